"""Turn a `Recipe` into a training run with a run folder; resume one from its latest checkpoint."""
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile

import keras
import tensorflow as tf

import backbones
import callbacks  # noqa: F401  (registers the schedules)
import heads  # noqa: F401
import losses
from callbacks.atomic import save_model, write_json
from callbacks.checkpoints import EpochCheckpoint, latest_checkpoint, read_state, restore_rng_states
from callbacks.divergence import NonFiniteLossGuard
from callbacks.lr_schedules import schedule_callback
from callbacks.run_record import RunRecord, truncate_history
from callbacks.tracking import TrackingCallback, start_tracking
from callbacks.verification import VerificationCallback
from data.pipeline import SkippedFiles, train_dataset
from data.sources import load_training_data
from losses.combined import find_center_loss
from recipes.distribution import is_chief, make_strategy, mixed_precision_policy, per_worker_datasets
from recipes.face_model import FaceTrainingModel
from registry import HEADS


class TrainingStopped(RuntimeError):
    """Training ended early (diverged or interrupted); `exit_code` is what the CLI exits with."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


def build_training_model(recipe, num_classes):
    """The `FaceTrainingModel` (embedding model + head + loss) that `recipe` describes, for `num_classes`."""
    embedder = backbones.build_embedding_model(
        recipe.backbone, recipe.embedding_size, recipe.dropout, recipe.image_size, recipe.backbone_weights,
        recipe.sync_batchnorm,
    )
    face_loss = losses.build_loss(recipe.loss, num_classes, recipe.embedding_size, **recipe.loss_args)
    if recipe.center_factor > 0:
        face_loss = losses.WithCenterLoss(num_classes, recipe.embedding_size, face_loss, factor=recipe.center_factor)
    model = FaceTrainingModel(embedder, HEADS.build(recipe.head, num_classes=num_classes), face_loss)
    model.build((None, recipe.image_size, recipe.image_size, 3))
    if recipe.centers_file:
        center = find_center_loss(face_loss)
        if center is None:
            raise ValueError(f"--centers_file={recipe.centers_file!r} given, but loss {recipe.loss!r} has no center loss.")
        center.import_centers(recipe.centers_file)
    model.compile(optimizer=keras.optimizers.get({"class_name": recipe.optimizer, "config": {"learning_rate": recipe.lr}}),
                  jit_compile=recipe.jit_compile)
    model.optimizer.build(model.trainable_variables)
    return model


def make_run_dir(runs_dir, name):
    """A new folder `runs_dir/<name>-<YYYYmmdd-HHMMSS>` (with a suffix if taken)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(runs_dir, f"{name}-{stamp}")
    path, number = base, 1
    while os.path.exists(path):
        number += 1
        path = f"{base}-{number}"
    os.makedirs(path)
    return path


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _start_or_resume(recipe, strategy, num_classes, resume_dir, chief):
    """(model, run folder, checkpoint state) of a new run, or of `resume_dir` at its latest checkpoint.

    Workers other than the chief get a temporary folder: only the chief writes the run folder.
    """
    run_dir = resume_dir if resume_dir is not None and chief else None
    if run_dir is None:
        run_dir = make_run_dir(recipe.runs_dir, recipe.name) if chief else tempfile.mkdtemp(prefix="worker-run-")
    if resume_dir is None:
        with strategy.scope():
            return build_training_model(recipe, num_classes), run_dir, {"epoch": 0, "best": None}
    checkpoint = latest_checkpoint(resume_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"run folder {resume_dir!r} has no complete checkpoint to resume from; start a new run.")
    state = read_state(checkpoint)
    with strategy.scope():
        model = keras.saving.load_model(os.path.join(checkpoint, "model.keras"))
    restore_rng_states(model, state.get("rng_states", {}))
    truncate_history(os.path.join(run_dir, "history.jsonl"), state["epoch"])
    print(f"resuming {resume_dir} after epoch {state['epoch']} (checkpoint {checkpoint})")
    return model, run_dir, state


def train(recipe, resume_dir=None):
    """Run `recipe` (or continue the run in `resume_dir` at its next epoch); returns the run folder.

    The folder gets `recipe.json` (resolved recipe + dataset facts), `classes.json` (id →
    folder name), `history.jsonl` (one row per epoch), `checkpoints/epoch-NNNN/` (full
    training state), `model.keras` (training model, with loss state), `embedding.keras`
    (embedding model), `best_embedding.keras`, `centers.npy` (center-loss centres (C, d), if any) and `skipped_files.tsv` (unreadable images, with
    the reason; only if there were any). Raises `TrainingStopped` on a non-finite
    loss or on SIGINT/SIGTERM, after the last finished epoch is safely checkpointed.
    """
    strategy = make_strategy(recipe.strategy, recipe.cpu_replicas)
    if recipe.mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    keras.utils.set_random_seed(recipe.seed)
    if recipe.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = load_training_data(recipe.dataset, recipe.data, recipe.eval_bins, recipe.min_images, recipe.max_classes)
    folder, bin_paths = data.train, list(data.bin_paths)
    global_batch = recipe.batch_size * strategy.num_replicas_in_sync
    steps = recipe.steps_per_epoch or max(1, len(folder) // global_batch)
    chief = is_chief()
    model, run_dir, state = _start_or_resume(recipe, strategy, folder.num_classes, resume_dir, chief)
    facts = {
        "data_resolved": os.path.abspath(folder.root), "eval_bins_resolved": bin_paths,
        "num_classes": folder.num_classes, "num_images": len(folder), "steps_per_epoch_resolved": steps,
        "strategy_resolved": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
        "global_batch_size": global_batch, "mixed_precision_policy": keras.mixed_precision.global_policy().name,
        "skipped_at_scan": len(folder.skipped),
    }
    write_json(os.path.join(run_dir, "recipe.json"), {**recipe.to_dict(), **facts})
    write_json(os.path.join(run_dir, "classes.json"), dict(enumerate(folder.class_names)))
    print(f"run folder: {run_dir}")
    print(f"data: {folder.root}: {len(folder)} images, {folder.num_classes} classes")
    print(f"strategy: {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s); global batch "
          f"{global_batch} = {recipe.batch_size} per replica x {strategy.num_replicas_in_sync}; {steps} steps per epoch")

    skipped = SkippedFiles(os.path.join(run_dir, "skipped_files.tsv"))
    skipped.extend(folder.skipped)
    dataset = per_worker_datasets(strategy, lambda batch, start, shard, shards: train_dataset(
        folder.paths, folder.labels, batch, recipe.image_size, recipe.augment, recipe.seed, recipe.deterministic,
        start_step=start, skipped=skipped, shard=shard, num_shards=shards), global_batch, state["epoch"] * steps)
    verification = VerificationCallback(
        bin_paths, model.embedder, recipe.eval_batch_size,
        best_path=os.path.join(run_dir, "best_embedding.keras") if chief else None,
        monitor=recipe.eval_monitor, image_size=recipe.image_size, evaluate_before_training=resume_dir is None,
        every_steps=recipe.eval_every_steps,
    )
    if state.get("best") is not None:
        verification.best, verification.best_epoch = state["best"], state.get("best_epoch")
    guard = NonFiniteLossGuard()
    checkpointer = EpochCheckpoint(
        run_dir, state_fn=lambda epoch, logs: {"best": verification.best_or_none(), "best_epoch": verification.best_epoch,
                                               "wandb_run_id": tracker.run_id},
        keep=recipe.keep_checkpoints, best_epoch_fn=lambda: verification.best_epoch,
        should_skip=lambda: guard.message is not None,
    )
    schedule = schedule_callback(recipe.lr_schedule, recipe.lr, recipe.epochs, **recipe.lr_schedule_args)
    tracker = start_tracking(recipe, run_dir, facts, run_id=state.get("wandb_run_id"), enabled=chief,
                             loss_layer=model.face_loss)
    callback_list = [guard, verification, TrackingCallback(tracker, global_batch), schedule,
                     RunRecord(os.path.join(run_dir, "history.jsonl")), checkpointer]
    if not chief:
        callback_list = [guard, schedule]
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        history = model.fit(dataset, epochs=recipe.epochs, initial_epoch=state["epoch"], steps_per_epoch=steps,
                            callbacks=callback_list, shuffle=False, verbose=recipe.verbose)
        tracker.log_best_model(verification.best_path, verification.monitor, verification.best_or_none(),
                               verification.best_epoch)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.InternalError) as error:
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        raise TrainingStopped(
            f"a worker of the cluster failed or became unreachable ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:300]}). The last finished epoch is checkpointed in {run_dir}; "
            f"restart every worker with --resume={run_dir}", 4) from None
    except KeyboardInterrupt:
        raise TrainingStopped(
            f"interrupted; the last finished epoch is checkpointed in {run_dir}. "
            f"Continue with: python -m recipes run {recipe.name} --resume={run_dir}", 130) from None
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if len(skipped):
            print(f"{len(skipped)} unreadable image file(s) skipped ({skipped.dropped_samples} samples dropped "
                  f"in training); listed in {skipped.log_path}")
        tracker.finish(exit_code=0 if sys.exc_info()[0] is None and guard.message is None else 1)
    if guard.message:
        raise TrainingStopped(guard.message + f" Run folder: {run_dir}", 3)
    if not chief:
        shutil.rmtree(run_dir, ignore_errors=True)
        return None
    save_model(model, os.path.join(run_dir, "model.keras"))
    save_model(model.embedder, os.path.join(run_dir, "embedding.keras"))
    center = find_center_loss(model.face_loss)
    if center is not None:
        center.export_centers(os.path.join(run_dir, "centers.npy"))
    if verification.monitor in history.history:
        print(f"held-out verification {verification.monitor}: "
              f"untrained {verification.initial.get(verification.monitor, float('nan')):.4f} -> "
              f"trained {history.history[verification.monitor][-1]:.4f} (best {verification.best:.4f})")
    return run_dir


def find_run_to_resume(runs_dir, name):
    """The newest run folder of recipe `name` under `runs_dir` that has a checkpoint."""
    candidates = [
        os.path.join(runs_dir, entry) for entry in (os.listdir(runs_dir) if os.path.isdir(runs_dir) else [])
        if entry.startswith(f"{name}-") and latest_checkpoint(os.path.join(runs_dir, entry))
    ]
    if not candidates:
        raise FileNotFoundError(f"no run of recipe {name!r} with a checkpoint under {runs_dir!r}; nothing to resume.")
    return max(candidates, key=os.path.getmtime)


def stored_recipe(run_dir):
    """The recipe fields saved in `run_dir/recipe.json` (without the resolved dataset facts)."""
    path = os.path.join(run_dir, "recipe.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} does not exist: {run_dir!r} is not a run folder.")
    with open(path) as file:
        return json.load(file)
