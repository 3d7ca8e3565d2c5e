"""Turn a `Recipe` into a training run: prepare it, build its callbacks, fit with recovery, finish.

`train(recipe)` starts a run in a new run folder; `train(recipe, resume_dir)` continues one at
its next epoch from its newest usable checkpoint, after checking that the data is the same.
"""
import contextlib
import dataclasses
import errno
import inspect
import os
import shlex
import shutil
import signal
import sys
import tempfile
import traceback

import keras
import tensorflow as tf

import backbones
import losses
from backbones.onnx_graph import is_onnx_file, parse_onnx
from backbones.onnx_variants import onnx_backbone_args
from storage.atomic import save_model
from storage.checkpoints import list_checkpoints, restore_latest
from callbacks.context import RunContext
from storage.training_state import TrainingState
from recipes.schedules import build_schedule
from storage.run_folder import RunFolder
from storage.history import truncate_history, untrained_metrics
from storage.provenance import git_commit, project_version
from evaluation.verification import bin_name
from data.bins import BinFormatError, check_bin
from data.pipeline import SkippedFiles, build_augmentations, train_dataset
from data.sources import expand_bin_patterns, load_training_data
from losses.base import check_loss_output
from losses.combined import find_center_loss
from recipes.callback_failure import callback_failure_message, failing_callback
from recipes.distribution import is_chief, make_strategy, per_worker_datasets, precision_choice
from recipes.face_model import FaceTrainingModel, is_class_sharded
from recipes.finetune import freeze_schedule
from recipes.head_init import initialize_from_class_means
from recipes.optimizers import build_optimizer
from recipes.plugins import load_installed_plugins
from recipes.recipe import RecipeError
from recipes.run_label import run_label
from registry import CALLBACKS, HEADS


class TrainingStopped(RuntimeError):
    """Training ended early (diverged, interrupted, disk full, a worker lost); `exit_code` is what the CLI exits with."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


class RunRefused(RecipeError):
    """The run cannot start as asked (bad files, changed data, nothing to train); nothing was written."""


@dataclasses.dataclass
class PreparedRun:
    """A run ready to fit: its strategy, data pipeline, steps, callbacks' context and skipped-file log."""

    recipe: object
    strategy: object
    context: RunContext
    dataset: object
    steps_per_epoch: int
    skipped: SkippedFiles
    schedule_callback: object = None
    freeze_callback: object = None


def build_training_model(recipe, num_classes, steps_per_epoch=1):
    """The compiled `FaceTrainingModel` (embedding model + head + loss + optimizer) of `recipe`, built."""
    embedder = backbones.build_embedding_model(
        recipe.backbone, recipe.embedding_size, recipe.dropout, recipe.image_size, recipe.backbone_weights,
        recipe.sync_batchnorm, recipe.backbone_args,
    )
    face_loss = losses.build_loss(recipe.loss, num_classes, recipe.embedding_size, **recipe.loss_args)
    if recipe.center_factor > 0:
        face_loss = losses.WithCenterLoss(num_classes, recipe.embedding_size, face_loss, factor=recipe.center_factor)
    head = HEADS.build(recipe.head, num_classes=num_classes, **recipe.head_args)
    model = FaceTrainingModel(embedder, head, face_loss)
    model.build((None, recipe.image_size, recipe.image_size, 3))
    if recipe.centers_file:
        center = find_center_loss(face_loss)
        if center is None:
            raise RecipeError(f"--centers_file={recipe.centers_file!r} given, but loss {recipe.loss!r} has no center loss.")
        center.import_centers(recipe.centers_file)
    learning_rate, _ = build_schedule(recipe.lr_schedule, recipe.lr, recipe.epochs, steps_per_epoch,
                                      **recipe.schedule_args)
    optimizer = build_optimizer(recipe.optimizer, learning_rate, clip_grad_norm=recipe.clip_grad_norm,
                                lr_mult=recipe.lr_mult, **recipe.optimizer_args)
    model.compile(optimizer=optimizer,
                  jit_compile=recipe.jit_compile)
    model.optimizer.build(model.trainable_variables)
    return model


def check_before_data(recipe, resume_dir):
    """Refuse, before any data is read or anything written, what can be known wrong from the recipe and files."""
    try:
        bins = expand_bin_patterns(recipe.eval_bins)
    except FileNotFoundError as error:
        raise RunRefused(str(error)) from None
    for path in bins:
        try:
            check_bin(path)
        except (BinFormatError, FileNotFoundError) as error:
            raise RunRefused(f"--eval_bins: {error}") from None
    names = [bin_name(path) for path in bins]
    if bins and recipe.eval_monitor and recipe.eval_monitor.split("/")[0] not in names:
        raise RunRefused(f"--eval_monitor={recipe.eval_monitor!r} names no file of --eval_bins: use one of "
                         + ", ".join(f"{name}/acc" for name in names) + ".")
    check_augmentations(recipe.augment, recipe.augment_args)
    if recipe.backbone_weights and not os.path.isfile(recipe.backbone_weights):
        raise RunRefused(f"--backbone_weights={recipe.backbone_weights!r} does not exist; pass a local weights file.")
    if recipe.freeze != "none" and not recipe.backbone_weights and resume_dir is None:
        raise RunRefused(f"--freeze={recipe.freeze} holds parts of the starting model, but no --backbone_weights is "
                         "given: they would stay at their random initialisation. Pass --backbone_weights=FILE (an "
                         ".onnx model or a run's embedding.keras), or --freeze=none.")
    if resume_dir is not None:
        done = max((epoch for epoch, _ in list_checkpoints(resume_dir)), default=0)
        if done >= recipe.epochs:
            raise RunRefused(f"{resume_dir}: {done} epochs are trained already and --epochs={recipe.epochs}: nothing "
                             f"to train; nothing was changed. Pass --epochs=N with N > {done} to train longer.")
        return
    existing = os.path.abspath(recipe.runs_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        raise RunRefused(f"--runs_dir={recipe.runs_dir!r} cannot be created: {existing!r} is "
                         f"{'not a folder' if not os.path.isdir(existing) else 'not writable'}; pass a writable folder.")


def check_augmentations(augment, augment_args):
    """Refuse augmentation options that an augmentation rejects (ValueError), by running each on a blank image."""
    image, seed = tf.zeros((8, 8, 3), tf.uint8), tf.constant([0, 0], tf.int64)
    for name, augmentation in zip(augment, build_augmentations(augment, augment_args)):
        try:
            augmentation(image, seed)
        except ValueError as error:
            raise RunRefused(f"--augment {name}: {error}") from None


def check_same_data(run, folder):
    """Refuse to resume `run` on data whose identities (or image count) differ from the run's `classes.json`."""
    stored = run.read_classes()
    if stored is not None and stored != list(folder.class_names):
        removed = sorted(set(stored) - set(folder.class_names))
        added = sorted(set(folder.class_names) - set(stored))
        what = "; ".join(f"{kind} {len(names)} identities ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
                         for kind, names in (("removed", removed), ("added", added)) if names) or "the class order changed"
        raise RunRefused(f"--resume: the data at {folder.root!r} is not the data of run {run.path!r}: {what}. Class ids "
                         "would mean other people. Resume with the run's original data, or start a new run.")
    stored_images = run.read_config().get("num_images")
    if stored_images is not None and stored_images != len(folder):
        raise RunRefused(f"--resume: the data at {folder.root!r} has {len(folder)} images, run {run.path!r} was "
                         f"trained on {stored_images}. Resume with the run's original data, or start a new run.")


def run_facts(data, strategy, steps, global_batch):
    """What training resolved, stored beside the recipe in `recipe.json`."""
    commit, dirty = git_commit()
    return {
        "data_resolved": os.path.abspath(data.train.root), "eval_bins_resolved": list(data.bin_paths),
        "num_classes": data.train.num_classes, "num_images": len(data.train), "steps_per_epoch_resolved": steps,
        "strategy_resolved": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
        "global_batch_size": global_batch, "mixed_precision_policy": keras.mixed_precision.global_policy().name,
        "skipped_at_scan": len(data.train.skipped), "project_version": project_version(), "git_commit": commit,
        "git_dirty": dirty, "plugin_packages": list(load_installed_plugins()),
    }


def load_data(recipe):
    """The run's `TrainingData`; the data's own refusals (e.g. fewer than 2 identities, a bad `.bin` of the
    dataset's own when --eval_bins is not given) are `DataError`s."""
    data = load_training_data(recipe.dataset, recipe.data, recipe.eval_bins, recipe.min_images, recipe.max_classes)
    for path in () if recipe.eval_bins else data.bin_paths:
        check_bin(path)
    return data


def restore_run(run, model, chief):
    """The `TrainingState` of `run`'s newest usable checkpoint, loaded into `model`; says what it skipped."""
    state, damaged = restore_latest(run.path, model)
    skipped = "".join(f", skipping damaged {os.path.basename(folder)}: {reason}" for folder, reason in damaged)
    print(f"resuming after epoch {state.epoch} from {run.path}{skipped}")
    if chief:
        truncate_history(run.history_path, state.epoch)
    return state


def with_onnx_variant(recipe):
    """`recipe` with the backbone options of the variant its `.onnx` --backbone_weights is (the file decides them),
    so that the run's recipe.json says what was built."""
    if not is_onnx_file(recipe.backbone_weights):
        return recipe
    options = onnx_backbone_args(parse_onnx(recipe.backbone_weights), recipe.backbone, recipe.backbone_args)
    if options != recipe.backbone_args:
        print(f"backbone options of {recipe.backbone_weights}: " +
              " ".join(f"--backbone_args.{key}={value!r}" for key, value in options.items()))
    return recipe.replace(backbone_args=options)


def prepare_run(recipe, resume_dir=None, held=None):
    """Everything up to `fit`: checks, strategy, data, model (restored on resume), run folder, config.

    The chief takes the run folder's writer lock first thing on a resume, right after creating the
    folder of a new run, and enters it into `held` (a `contextlib.ExitStack`), which releases it.
    """
    chief = is_chief()
    if resume_dir is not None and chief:
        held.enter_context(RunFolder(resume_dir).lock())
    strategy = make_strategy(recipe.strategy, recipe.cpu_replicas)  # first: it configures TensorFlow's devices
    check_before_data(recipe, resume_dir)
    recipe = with_onnx_variant(recipe)
    policy, reason = precision_choice(recipe.mixed_precision, recipe.backbone)
    keras.mixed_precision.set_global_policy(policy)
    print(f"precision: {policy} ({reason})")
    keras.utils.set_random_seed(recipe.seed)
    if recipe.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = load_data(recipe)
    if resume_dir is not None and chief:
        check_same_data(RunFolder(resume_dir), data.train)
    global_batch = recipe.batch_size * strategy.num_replicas_in_sync
    steps = recipe.steps_per_epoch or max(1, len(data.train) // global_batch)
    with strategy.scope():
        model = build_training_model(recipe, data.train.num_classes, steps)
        check_loss_output(model.face_loss)
    if recipe.head_init == "class_means" and resume_dir is None:
        initialize_from_class_means(model, data.train, recipe.image_size, recipe.eval_batch_size)
    if not chief:
        run = RunFolder(tempfile.mkdtemp(prefix="worker-run-"))
    elif resume_dir is not None:
        run = RunFolder(resume_dir)
    else:
        run = RunFolder.create(recipe.runs_dir, run_label(recipe))
        held.enter_context(run.lock())
    state = restore_run(RunFolder(resume_dir), model, chief) if resume_dir is not None else TrainingState()
    freeze_callback = freeze_schedule(recipe, model, state.epoch)
    config = {**recipe.resolved(), **run_facts(data, strategy, steps, global_batch)}
    if chief:
        run.write_config(config)
        run.write_classes(data.train.class_names)
    print(f"run folder: {run.path}")
    print(f"data: {data.train.root}: {len(data.train)} images, {data.train.num_classes} classes")
    print(f"strategy: {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s); global batch "
          f"{global_batch} = {recipe.batch_size} per replica x {strategy.num_replicas_in_sync}; {steps} steps per epoch")
    skipped = SkippedFiles(run.skipped_path)
    skipped.extend(data.train.skipped)
    dataset = per_worker_datasets(strategy, lambda batch, start, shard, shards: train_dataset(
        data.train.paths, data.train.labels, batch, recipe.image_size, recipe.augment, recipe.seed, start_step=start,
        skipped=skipped, shard=shard, num_shards=shards, augment_args=recipe.augment_args), global_batch,
        state.epoch * steps)
    _, schedule_callback = build_schedule(recipe.lr_schedule, recipe.lr, recipe.epochs, steps, **recipe.schedule_args)
    context = RunContext(run, model, state, config, tuple(data.bin_paths), global_batch, chief, resume_dir is not None,
                         every_worker_saves=is_class_sharded(model.head),
                         baseline=untrained_metrics(run.history_path) if resume_dir is not None else {})
    return PreparedRun(recipe, strategy, context, dataset, steps, skipped, schedule_callback, freeze_callback)


def build_callbacks(recipe, context):
    """The Keras callbacks named in `recipe.callbacks`, each built with its `recipe.callback_args`.

    An entry is a `keras.callbacks.Callback` subclass or a factory returning one, a list of them (as
    `tracking` does) or None (not used); it gets the run's `context` if it has a `context` parameter.
    """
    built = []
    for name in recipe.callbacks:
        entry, options = CALLBACKS.get(name), recipe.callback_args.get(name, {})
        takes_context = "context" in inspect.signature(entry).parameters
        built.append(entry(context=context, **options) if takes_context else entry(**options))
    flat = [item for callback in built for item in (callback if isinstance(callback, (list, tuple)) else [callback])]
    return [callback for callback in flat if callback is not None]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt inside the block (as Ctrl-C does), so a kill stops with a sentence."""
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


def fit_with_recovery(prepared, callback_list):
    """`model.fit`; Ctrl-C (SIGTERM too, inside `train`), a full disk and a lost worker become `TrainingStopped` with
    a named exit code (130, 5, 4) after the last finished epoch is safely checkpointed. Returns the Keras history."""
    recipe, context = prepared.recipe, prepared.context
    callback_list = callback_list + [callback for callback in (prepared.schedule_callback, prepared.freeze_callback)
                                     if callback is not None]
    exit_code = 1
    try:
        history = context.model.fit(
            prepared.dataset, epochs=recipe.epochs, initial_epoch=context.state.epoch,
            steps_per_epoch=prepared.steps_per_epoch, callbacks=callback_list, shuffle=False,
            verbose=recipe.verbose if recipe.verbose is not None else (1 if sys.stdout.isatty() else 2))
        exit_code = 0 if context.state.stop_message is None else 1
        return history
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.InternalError) as error:
        if not isinstance(prepared.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        raise TrainingStopped(
            f"a worker of the cluster failed or became unreachable ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:300]}). {what_next(context.run.path, recipe.name)} (on every worker)",
            4) from None
    except KeyboardInterrupt:
        raise TrainingStopped(f"interrupted. {what_next(context.run.path, recipe.name)}", 130) from None
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise TrainingStopped(f"the disk is full ({error.filename or context.run.path}: {error.strerror}). Free "
                              f"space. {what_next(context.run.path, recipe.name)}", 5) from None
    except Exception as error:
        failed = failing_callback(error, callback_list)
        if failed is None:
            raise
        traceback.print_exception(error)
        raise TrainingStopped(callback_failure_message(failed, error, recipe.callbacks, context.run.path,
                                                       resume_command(recipe.name, context.run.path)), 1) from None
    finally:
        _report_skipped(prepared.skipped)
        for callback in callback_list:
            if hasattr(callback, "close"):
                callback.close(exit_code)


def what_next(run_path, recipe_name):
    """After a stop: the command that continues from the run's newest checkpoint, or, when no epoch was
    checkpointed, that nothing can be resumed and the command that starts the same recipe again."""
    epochs = [epoch for epoch, _ in list_checkpoints(run_path)]
    if epochs:
        return (f"The last finished epoch ({epochs[-1]}) is checkpointed in {run_path}; continue with: "
                + resume_command(recipe_name, run_path))
    recipe_file = os.path.join(run_path, RunFolder.RECIPE)
    return (f"No epoch finished, so {run_path} holds no checkpoint and nothing can be resumed; start again with: "
            f"python -m recipes run {shlex.quote(recipe_file)} (and delete {run_path})")


def interrupted_while_setting_up(recipe_name, resume_dir):
    """The stop message of an interrupt before the first training step (data scan, model build)."""
    if resume_dir is not None:
        return ("interrupted while the run was being set up, before training resumed; its checkpoints are as they "
                f"were. Continue with: {resume_command(recipe_name, resume_dir)}")
    return ("interrupted while the run was being set up (data scan, model build), before any training step: nothing "
            "was trained or checkpointed. Run the same command again.")


def resume_command(recipe_name, run_path):
    """The command line that continues the run in `run_path` (any recipe reference works with a run folder)."""
    return f"python -m recipes run {shlex.quote(recipe_name)} --resume={shlex.quote(run_path)}"


def _report_skipped(skipped):
    if len(skipped):
        print(f"{len(skipped)} unreadable image file(s) skipped ({skipped.dropped_samples} samples dropped "
              f"in training); listed in {skipped.log_path}")


def finish(prepared, history):
    """Save the final models (chief) and print the held-out verification summary; returns the run folder.

    With a class-sharded head every worker takes part in saving `model.keras` (a collective
    gathers the head's shards); a worker that is not the chief saves into its temporary run
    folder, then deletes it.
    """
    context = prepared.context
    if context.state.stop_message:
        raise TrainingStopped(context.state.stop_message + f" Run folder: {context.run.path}", 3)
    if context.saves_model:
        save_model(context.model, context.run.model_path)
    if not context.chief:
        shutil.rmtree(context.run.path, ignore_errors=True)
        return None
    save_model(context.model.embedder, context.run.embedding_path)
    monitor = next((key for key in history.history if key.endswith("/acc")), None)
    monitor = context.config["eval_monitor"] or monitor
    if monitor in history.history:
        print(f"held-out verification {monitor}: untrained {context.baseline.get(monitor, float('nan')):.4f} -> "
              f"trained {history.history[monitor][-1]:.4f} (best {context.state.best:.4f})")
    return context.run.path


def train(recipe, resume_dir=None):
    """Run `recipe` (or continue the run in `resume_dir` at its next epoch); returns the run folder
    (None on a worker that is not the chief). The folder's files are listed in `RunFolder`.
    Raises `RunRefused` before anything is written when the run cannot start as asked, `RunLocked`
    when another process writes `resume_dir`, and `TrainingStopped` when it ends early, after the
    last finished epoch is safely checkpointed. The run folder's writer lock is held throughout.
    """
    with contextlib.ExitStack() as held, sigterm_as_interrupt():  # held: the run folder's writer lock
        try:
            prepared = prepare_run(recipe, resume_dir, held)
        except KeyboardInterrupt:
            raise TrainingStopped(interrupted_while_setting_up(recipe.name, resume_dir), 130) from None
        history = fit_with_recovery(prepared, build_callbacks(prepared.recipe, prepared.context))
        return finish(prepared, history)
