"""`Recipe`: every setting of a training run, documented next to its field, with validated overrides."""
import dataclasses
import inspect
import math
import typing
from typing import Optional

from losses.options import CENTER_LOSSES
from recipes.optimizer_ranges import validate_optimizer_options
from recipes.optimizer_table import optimizer_table
from recipes.weight_decay import WEIGHT_DECAY_MODES
from registry import (AUGMENTATIONS, BACKBONES, CALLBACKS, DATASETS, HEADS, LOSSES, SCHEDULES, OptionError, UserError,
                      close_matches, unknown_message)


class RecipeError(UserError, ValueError):
    """A bad recipe field or value; the message says which and what to do."""


def option(default, doc, group):
    """A recipe field with its one-line `doc` and help `group` (mutable defaults are copied per recipe)."""
    metadata = {"doc": doc, "group": group}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


BUILTIN_CALLBACKS = ["nan_guard", "verification", "throughput", "tracking", "run_record", "centers_export",
                     "checkpoint"]
MIXED_PRECISION_CHOICES = ("auto", "true", "false")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
WANDB_MODES = ("auto", "online", "offline", "disabled")
TRACKING_CHOICES = ("auto", "tensorboard", "wandb", "both", "none")
FREEZE_CHOICES = ("none", "backbone", "batchnorm")
HEAD_INIT_CHOICES = ("random", "class_means")
# The parts of the training model a learning-rate factor (`lr_mult`) can name.
LR_MULT_PARTS = ("backbone", "head", "loss")
# Field renamed in round 2; the old name is still accepted on the command line and in stored recipes.
FIELD_ALIASES = {"lr_schedule_args": "schedule_args"}


@dataclasses.dataclass
class Recipe:
    """A training run. Defaults are the spec's: ResNet50V2, 512-d, adamax, 0.001 then decay, batch 128."""

    name: str = option("softmax", "recipe name; run folders are RUNS_DIR/NAME-<date>-<time>", "run")
    # model
    backbone: str = option("resnet50v2", "backbone (see `list`)", "model")
    backbone_args: dict = option({}, "options of the backbone: --backbone_args.NAME=VALUE", "model")
    backbone_weights: Optional[str] = option(None, "local weights file to start the backbone from", "model")
    embedding_size: int = option(512, "embedding dimension d", "model")
    dropout: float = option(0.1, "dropout before the embedding layer, in [0, 1)", "model")
    head: str = option("norm_dense", "classifier head (see `list`)", "model")
    head_args: dict = option({}, "options of the head: --head_args.NAME=VALUE", "model")
    loss: str = option("softmax", "loss (see `list`)", "model")
    loss_args: dict = option({}, "options of the loss: --loss_args.NAME=VALUE (e.g. margins, scale)", "model")
    center_factor: float = option(0.0, "add FACTOR x center loss to the loss (0: none)", "model")
    centers_file: Optional[str] = option(None, "centers.npy of an earlier run to start the center loss from", "model")
    # optimisation
    optimizer: str = option("adamax", "any keras.optimizers name: sgd, adam, adamw, adamax, ...", "optimisation")
    optimizer_args: dict = option({}, "optimizer options: --optimizer_args.momentum=0.9, .weight_decay=5e-4, "
                                  ".weight_decay_mode=coupled (PyTorch's) or decoupled (Keras'), "
                                  ".weight_decay_exclude=[gamma,beta] (name substrings; [] decays all)", "optimisation")
    clip_grad_norm: float = option(0.0, "clip the backbone's gradients to this global L2 norm each step, after "
                                   "the replicas' sum and loss-scale unscaling (0: off)", "optimisation")
    lr: float = option(0.001, "base learning rate", "optimisation")
    lr_schedule: str = option("constant_then_exponential", "learning-rate schedule (see `list`)", "optimisation")
    schedule_args: dict = option({}, "schedule options: --schedule_args.NAME=VALUE", "optimisation")
    epochs: int = option(200, "epochs to train", "optimisation")
    batch_size: int = option(128, "images per step per replica (global batch = batch_size x replicas)", "optimisation")
    steps_per_epoch: Optional[int] = option(None, "steps per epoch (None: images // global batch)", "optimisation")
    jit_compile: bool = option(False, "compile the training step with XLA (slower on CPU, faster on GPU)", "optimisation")
    # fine-tuning (recipes/finetune.py, recipes/head_init.py)
    freeze: str = option("none", "backbone: no weight of the embedding model trains and its BatchNorms use their "
                         "stored statistics; batchnorm: only its BatchNorms are held (statistics, gamma, beta: keep "
                         "the backbone's rate small, e.g. 1e-4, as the finetune recipe does); none", "fine-tuning")
    freeze_epochs: int = option(0, "epochs --freeze lasts, then everything trains (0: the whole run)", "fine-tuning")
    lr_mult: dict = option({}, "learning-rate factor of a part: --lr_mult.backbone=0.1 (parts: backbone = the "
                           "embedding model, head, loss); its rate is the schedule's times the factor", "fine-tuning")
    head_init: str = option("random", "class_means: before the first step each class vector is the normalised mean "
                            "embedding of that identity's training images under the starting model; random",
                            "fine-tuning")
    # distribution
    strategy: str = option("auto", "tf.distribute strategy: auto, default, mirrored, multi_worker", "distribution")
    cpu_replicas: int = option(0, "split the CPU into N replicas (tests, trying mirrored without GPUs)", "distribution")
    sync_batchnorm: bool = option(False, "BatchNorm statistics over the global batch", "distribution")
    mixed_precision: str = option("auto", "true: bfloat16 (CPU) or float16 (GPU) compute, float32 head and loss; "
                                  "auto: where measured faster for the backbone; false", "distribution")
    # data
    dataset: str = option("auto", "dataset (see `list`); auto: folder with --data, else the synthetic faces", "data")
    data: Optional[str] = option(None, "folder of identity sub-folders of aligned faces", "data")
    min_images: int = option(1, "leave out identities with fewer images", "data")
    max_classes: Optional[int] = option(None, "keep only the first N identities", "data")
    image_size: int = option(112, "input size in pixels (square)", "data")
    augment: list = option(["flip"], "augmentations, in order (see `list`)", "data")
    augment_args: dict = option({}, "augmentation options: --augment_args.NAME.OPTION=VALUE", "data")
    eval_bins: list = option([], "verification .bin files (glob patterns allowed)", "data")
    eval_batch_size: int = option(128, "batch size of verification", "data")
    eval_monitor: Optional[str] = option(None, "metric that picks the best model, BIN/acc (default: last bin)", "data")
    eval_every_steps: int = option(0, "also verify every N steps (0: only at epoch ends)", "data")
    # run
    seed: int = option(0, "random seed (weights, shuffling, augmentation)", "run")
    deterministic: bool = option(False, "deterministic ops (bit-identical reruns, slower)", "run")
    runs_dir: str = option("runs", "folder that receives the run folders", "run")
    keep_checkpoints: int = option(3, "newest checkpoints to keep (the best one is kept too)", "run")
    plugins: list = option([], "your .py files or modules to import first (they register plugins)", "run")
    callbacks: list = option(BUILTIN_CALLBACKS, "Keras callbacks by name; --callbacks=+NAME adds one", "run")
    callback_args: dict = option({}, "callback options: --callback_args.NAME.OPTION=VALUE", "run")
    verbose: Optional[int] = option(None, "Keras fit verbosity: 1 progress bar, 2 one line per epoch and "
                                          "TensorFlow's C++ log lines, 0 silent; None: 1 on a terminal, else 2", "run")
    log_every_steps: int = option(50, "log loss, lr and images/s every N steps (0: only per epoch)", "run")
    # experiment tracking; `name` is the recipe, so the wandb run's name is `run_name`
    tracking: str = option("auto", "tensorboard, wandb, both or none; auto: TensorBoard, plus W&B when an API key "
                                   "is configured, WANDB_MODE is set or --wandb is online/offline", "tracking")
    wandb: str = option("auto", "W&B mode: auto (online with an API key, else offline), online, offline, disabled",
                        "tracking")
    wandb_project: str = option("face-recipes", "W&B project", "tracking")
    wandb_entity: Optional[str] = option(None, "W&B entity (team or user)", "tracking")
    wandb_group: Optional[str] = option(None, "W&B group (None: the recipe name)", "tracking")
    tags: list = option([], "W&B tags", "tracking")
    run_name: Optional[str] = option(None, "W&B run name (None: the run folder's name)", "tracking")

    def replace(self, **overrides):
        """A validated copy with `overrides` (field → value, 'loss_args.key' → value,
        'callback_args.NAME.key' / 'augment_args.NAME.key' → value, 'callbacks' → '+NAME' to add one) coerced
        to the fields' types.

        Changing a part (`loss`, `head`, ...) without giving its `*_args` starts those args empty.
        """
        values = dataclasses.asdict(self)
        for key, value in overrides.items():
            field, _, sub_key = key.partition(".")
            field = FIELD_ALIASES.get(field, field)
            if field not in values:
                raise RecipeError(f"--{key}: " + unknown_fields_message([field]))
            if sub_key:
                values[field] = _set_nested(field, dict(values[field]), sub_key, value)
            elif field == "callbacks" and isinstance(value, str) and value.startswith("+"):
                values[field] = values[field] + [name for name in parse_list(value[1:]) if name not in values[field]]
            else:
                values[field] = _coerce(field, _FIELD_TYPES[field], value)
        values["mixed_precision"] = str(values["mixed_precision"]).lower()
        values["lr_mult"] = _validate_lr_mult(values["lr_mult"])
        for part, args in PART_ARGS.items():
            changed = values[part] != getattr(self, part)
            if changed and not any(FIELD_ALIASES.get(key.split(".")[0], key.split(".")[0]) == args for key in overrides):
                values[args] = {}
        for part, args in PART_ARGS.items():
            values[args] = _validate_args(part, args, values[args], part_options(part, values[part]))
        if values["augment"] != self.augment and not any(key.split(".")[0] == "augment_args" for key in overrides):
            values["augment_args"] = {name: options for name, options in values["augment_args"].items()
                                      if name in values["augment"]}
        for field, kind, owner in (("callback_args", "callbacks", "callback"),
                                   ("augment_args", "augment", "augmentation")):
            values[field] = {
                name: _validate_args(f"{owner} '{name}'", f"{field}.{name}", options, part_options(kind, name))
                for name, options in values[field].items()
            }
        recipe = Recipe(**values)
        recipe.validate()
        return recipe

    def validate(self):
        """Check names against the registries and values against their ranges (reads no data); raise RecipeError."""
        for field, registry in (("backbone", BACKBONES), ("head", HEADS), ("loss", LOSSES),
                                ("lr_schedule", SCHEDULES), ("dataset", DATASETS)):
            name = getattr(self, field)
            if not (field == "dataset" and name == "auto") and name not in registry:
                raise RecipeError(f"--{field}={name!r}: " + unknown_message(registry.name[:-1], name, registry.names()))
        for field, registry in (("augment", AUGMENTATIONS), ("callbacks", CALLBACKS)):
            for name in getattr(self, field):
                if name not in registry:
                    raise RecipeError(f"--{field}: " + unknown_message(registry.name[:-1], name, registry.names()))
        for name in self.callback_args:
            if name not in self.callbacks + tracker_callbacks(self):
                raise RecipeError(f"--callback_args.{name}: callback {name!r} is not in --callbacks {self.callbacks}.")
        for name in self.augment_args:
            if name not in self.augment:
                raise RecipeError(f"--augment_args.{name}: augmentation {name!r} is not in --augment {self.augment}.")
        if self.optimizer not in optimizer_table():
            raise RecipeError(f"--optimizer={self.optimizer!r}: " + unknown_message(
                "optimizer", self.optimizer, optimizer_table()))
        for field in ("embedding_size", "epochs", "batch_size", "image_size", "eval_batch_size", "keep_checkpoints"):
            if getattr(self, field) < 1:
                raise RecipeError(f"--{field}={getattr(self, field)!r} must be a positive integer.")
        for field in ("cpu_replicas", "eval_every_steps", "log_every_steps", "min_images"):
            if getattr(self, field) < 0:
                raise RecipeError(f"--{field}={getattr(self, field)!r} must be >= 0.")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise RecipeError(f"--steps_per_epoch={self.steps_per_epoch!r} must be a positive integer or None.")
        if self.max_classes is not None and self.max_classes < 2:
            raise RecipeError(f"--max_classes={self.max_classes!r}: training needs at least 2 identities.")
        for field, annotation in _FIELD_TYPES.items():
            value = getattr(self, field)
            if annotation in (float, Optional[float]) and value is not None and not math.isfinite(value):
                raise RecipeError(f"--{field}={value!r} must be a finite number.")
        if not 0.0 <= self.dropout < 1.0:
            raise RecipeError(f"--dropout={self.dropout!r} must be in [0, 1).")
        if self.lr <= 0:
            raise RecipeError(f"--lr={self.lr!r} must be positive.")
        if self.clip_grad_norm < 0:
            raise RecipeError(f"--clip_grad_norm={self.clip_grad_norm!r} must be >= 0 (0: no clipping).")
        mode = self.optimizer_args.get("weight_decay_mode", "decoupled")
        if mode not in WEIGHT_DECAY_MODES:
            raise RecipeError(f"--optimizer_args.weight_decay_mode={mode!r}: choose coupled (PyTorch's SGD/Adam "
                              "weight_decay: wd·w added to the gradient) or decoupled (Keras': w ← w − lr·wd·w).")
        if self.strategy not in STRATEGIES:
            raise RecipeError(f"--strategy={self.strategy!r}: " + unknown_message("strategy", self.strategy, STRATEGIES))
        if self.center_factor < 0:
            raise RecipeError(f"--center_factor={self.center_factor!r} must be >= 0 (0 = no added center loss).")
        self._validate_part_options()
        self.resolved_loss_args()
        if self.center_factor > 0 and _has_center_loss(self.loss, self.loss_args):
            raise RecipeError(f"--center_factor={self.center_factor} with --loss={self.loss!r}, which has a center "
                              "loss already: set its weight with --loss_args.center_factor, or pick a loss without one.")
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise RecipeError(f"--mixed_precision={self.mixed_precision!r}: " + unknown_message(
                "choice", self.mixed_precision, MIXED_PRECISION_CHOICES))
        if self.tracking not in TRACKING_CHOICES:
            raise RecipeError(f"--tracking={self.tracking!r}: " + unknown_message("choice", self.tracking,
                                                                                  TRACKING_CHOICES))
        if self.wandb not in WANDB_MODES:
            raise RecipeError(f"--wandb={self.wandb!r}: " + unknown_message("wandb mode", self.wandb, WANDB_MODES))
        self._validate_finetuning()
        if self.eval_monitor is not None and not self.eval_monitor.endswith(("/acc", "/best_acc")):
            raise RecipeError(f"--eval_monitor={self.eval_monitor!r}: use BIN/acc or BIN/best_acc, where BIN is the "
                              "file name of a verification .bin without .bin (e.g. lfw/acc).")

    def _validate_part_options(self):
        """Each part's own `validate_options` on its options (defaults filled in) and the run's `base_lr` and
        `epochs`, before anything is built; a value out of range is a RecipeError naming its flag."""
        registries = {"backbone": BACKBONES, "head": HEADS, "loss": LOSSES, "lr_schedule": SCHEDULES}
        for part, args in PART_ARGS.items():
            name = getattr(self, part)
            known = part_options(part, name)
            options = {**_defaults(known), **_validate_args(part, args, getattr(self, args), known)}
            try:
                if part == "optimizer":
                    validate_optimizer_options(options)
                else:
                    registries[part].validate_options(name, {"base_lr": self.lr, "epochs": self.epochs, **options})
            except OptionError as error:
                if error.option not in options:
                    raise RecipeError(f"--{part}={name!r}: {error}") from None
                raise RecipeError(f"--{args}.{error.option}={error.value!r} {error.requirement}") from None
        for name, args in self.callback_args.items():
            known = part_options("callbacks", name)
            options = {**_defaults(known), **_validate_args(f"callback '{name}'", f"callback_args.{name}", args, known)}
            try:
                CALLBACKS.validate_options(name, options)
            except OptionError as error:
                raise RecipeError(f"--callback_args.{name}.{error.option}={error.value!r} {error.requirement}") from None

    def _validate_finetuning(self):
        for field, choices in (("freeze", FREEZE_CHOICES), ("head_init", HEAD_INIT_CHOICES)):
            if getattr(self, field) not in choices:
                raise RecipeError(f"--{field}={getattr(self, field)!r}: " + unknown_message(
                    "choice", getattr(self, field), choices))
        if self.freeze_epochs < 0:
            raise RecipeError(f"--freeze_epochs={self.freeze_epochs!r} must be >= 0 (0: frozen for the whole run).")
        if self.freeze_epochs and self.freeze == "none":
            raise RecipeError(f"--freeze_epochs={self.freeze_epochs} with --freeze=none: nothing is frozen; pass "
                              "--freeze=backbone or --freeze=batchnorm, or leave --freeze_epochs out.")
        if self.freeze == "backbone" and self.head == "partial_fc":
            raise RecipeError("--freeze=backbone with --head=partial_fc: the model's optimizer would have no variable "
                              "to step, so the schedule would not advance; use --freeze=batchnorm or --lr_mult.backbone.")

    def to_dict(self):
        return dataclasses.asdict(self)

    def resolved(self):
        """`to_dict()` with every `<part>_args` and `callback_args` completed by the part's defaults, and the
        loss's options as its built layer resolved them (e.g. the margins a preset picks). Running the
        result (`run recipe.json`) trains the same recipe."""
        values = self.to_dict()
        for part, args in PART_ARGS.items():
            values[args] = {**_defaults(part_options(part, values[part])), **values[args]}
        values["loss_args"] = self.resolved_loss_args()
        values["callback_args"] = {name: {**_defaults(part_options("callbacks", name)), **self.callback_args.get(name, {})}
                                   for name in self.callbacks + [key for key in self.callback_args
                                                                 if key not in self.callbacks]}
        values["augment_args"] = {
            name: {**_defaults(part_options("augment", name)), **self.augment_args.get(name, {})}
            for name in dict.fromkeys(self.augment)}
        return values

    def resolved_loss_args(self):
        """The loss's options completed by its defaults, as the loss resolves them (`resolve_options`, e.g. the
        margins of a preset), without building it; RecipeError for a value the loss refuses."""
        options = {**_defaults(part_options("loss", self.loss)), **self.loss_args}
        try:
            return LOSSES.resolve_options(self.loss, options)
        except ValueError as error:
            raise RecipeError(f"--loss_args of loss {self.loss!r}: {error}") from None

    @classmethod
    def field_names(cls):
        return [field.name for field in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, stored, overrides=None, source="the stored recipe"):
        """The recipe stored as a dict (`show`'s JSON, a run's `recipe.json`) with `overrides` on top.

        As strict as the command line: a key that is neither a field nor one of the `RUN_FACTS`
        training stores beside them is refused (RecipeError naming `source`, e.g. "recipe file
        'r.json'", with close matches), and so is a bad value; a file written by a newer
        face-recipes is named as such.
        """
        unknown = [key for key in stored if FIELD_ALIASES.get(key, key) not in cls.field_names() and key not in RUN_FACTS]
        if unknown:
            raise RecipeError(f"{source}: " + _unknown_fields_message(unknown, stored.get("project_version")))
        try:
            recipe = cls().replace(**{FIELD_ALIASES.get(key, key): value for key, value in stored.items()
                                      if key not in RUN_FACTS})
        except RecipeError as error:
            raise RecipeError(f"{source}: {error}") from None
        return recipe.replace(**(overrides or {}))


# What training stores in a run's recipe.json beside the recipe's fields (`recipes.train.run_facts`).
RUN_FACTS = ("data_resolved", "eval_bins_resolved", "num_classes", "num_images", "steps_per_epoch_resolved",
             "strategy_resolved", "replicas", "global_batch_size", "mixed_precision_policy", "skipped_at_scan",
             "project_version", "git_commit", "git_dirty", "plugin_packages")
# Names other trainers use for a field, suggested when they appear as unknown fields.
COMMON_NAMES = {"learning_rate": "lr", "num_epochs": "epochs", "momentum": "optimizer_args.momentum",
                "weight_decay": "optimizer_args.weight_decay", "warmup_epochs": "schedule_args.warmup_epochs",
                "lr_scheduler": "lr_schedule", "sample_rate": "head_args.sample_rate", "network": "backbone",
                "margin_list": "loss_args"}
# part field → its options field
PART_ARGS = {"backbone": "backbone_args", "head": "head_args", "loss": "loss_args", "optimizer": "optimizer_args",
             "lr_schedule": "schedule_args"}
_FIELD_TYPES = typing.get_type_hints(Recipe)


def tracker_callbacks(recipe):
    """The tracking callbacks (`tensorboard`, `wandb`) that `recipe.tracking` may build; their options go in
    `callback_args` like those of the callbacks listed in `callbacks`."""
    if "tracking" not in recipe.callbacks:
        return []
    return {"auto": ["tensorboard", "wandb"], "both": ["tensorboard", "wandb"], "tensorboard": ["tensorboard"],
            "wandb": ["wandb"]}.get(recipe.tracking, [])


def part_options(part, name):
    """{option: default} that part `name` of kind `part` (a PART_ARGS key, 'callbacks' or 'augment') accepts,
    besides the arguments the trainer itself passes; {} for an unknown name (validation names it)."""
    registries = {"backbone": (BACKBONES, ("input_shape", "weights")), "head": (HEADS, ("num_classes",)),
                  "loss": (LOSSES, ("num_classes", "embedding_size", "name", "trainable", "dtype")),
                  "lr_schedule": (SCHEDULES, ("base_lr", "epochs", "steps_per_epoch")),
                  "callbacks": (CALLBACKS, ("context",)), "augment": (AUGMENTATIONS, ("image", "seed"))}
    if part == "optimizer":
        return dict(optimizer_table().get(name, {}))
    registry, fixed = registries[part]
    return registry.options(name, skip=fixed) if name in registry else {}


def unknown_fields_message(keys):
    """The refusal of the unknown recipe fields `keys`: close fields (or the field behind another trainer's name,
    e.g. 'learning_rate' → 'lr'), then every field."""
    close = {key: [COMMON_NAMES[key]] if key in COMMON_NAMES else close_matches(key, Recipe.field_names())
             for key in keys}
    hints = [", ".join(map(repr, matches)) + (f" for {key!r}" if len(keys) > 1 else "")
             for key, matches in close.items() if matches]
    return (f"unknown recipe field{'s' if len(keys) > 1 else ''} {', '.join(map(repr, keys))}."
            + (f" Did you mean {'; '.join(hints)}?" if hints else "")
            + f" Known: {', '.join(sorted(Recipe.field_names()))}.")


def _unknown_fields_message(unknown, version):
    """The refusal of a stored recipe's `unknown` keys; says so when `version` (the file's) is newer than ours."""
    from storage.provenance import project_version

    ours = project_version()
    if version and ours and _version_key(version) > _version_key(ours):
        return (f"written by face-recipes {version}, newer than this {ours}: its fields {', '.join(map(repr, unknown))} "
                "are unknown here. Upgrade face-recipes, or remove those fields.")
    return unknown_fields_message(unknown)


def _version_key(version):
    """'1.10.2' → (1, 10, 2) for comparing versions; text parts count as 0."""
    return tuple(int(part) if part.isdigit() else 0 for part in str(version).split("."))


def _defaults(options):
    """`options` without the required ones (no default to show)."""
    return {key: value for key, value in options.items() if value is not inspect.Parameter.empty}


def _has_center_loss(loss, loss_args):
    """True if loss `loss` holds a center loss already: a built-in one by name (`losses.options.CENTER_LOSSES`), a
    plugin's by building it (its module has imported TensorFlow already)."""
    if LOSSES.is_declared(loss):
        return LOSSES.canonical(loss) in CENTER_LOSSES
    from losses.base import build_loss
    from losses.combined import find_center_loss

    return find_center_loss(build_loss(loss, 2, 2, **loss_args)) is not None


def _set_nested(field, mapping, sub_key, value):
    """`mapping` with `sub_key` ('key' or, for callback_args and augment_args, 'name.key') set to `value`."""
    if field not in ("callback_args", "augment_args"):
        if "." in sub_key:
            raise RecipeError(f"--{field}.{sub_key}: use --{field}.OPTION=VALUE with one option name.")
        return {**mapping, sub_key: value}
    name, _, key = sub_key.partition(".")
    if not key:
        raise RecipeError(f"--{field}.{sub_key}: use --{field}.{field.split('_')[0].upper()}.OPTION=VALUE.")
    return {**mapping, name: {**mapping.get(name, {}), key: value}}


def _coerce(field, annotation, value):
    """`value` (as Fire parsed it) as the field's type, or RecipeError."""
    if typing.get_origin(annotation) is typing.Union:
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    try:
        return _COERCERS[annotation](value)
    except (TypeError, ValueError) as error:
        raise RecipeError(f"--{field}={value!r}: {error}") from None


def _to_int(value):
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    number = float(value)
    if not number.is_integer():
        raise ValueError("expected an integer")
    return int(number)


def _to_float(value):
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return float(value)


def _to_bool(value):
    text = str(value).lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError("expected true or false")


def parse_list(value):
    """A list of strings from a list, '[a, b]' or 'a,b'."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [part.strip() for part in text.split(",") if part.strip()]


def _to_dict(value):
    if not isinstance(value, dict):
        raise ValueError("expected a dict such as {margin2: 0.5}, or set one key with --FIELD.KEY=VALUE")
    return dict(value)


_COERCERS = {int: _to_int, float: _to_float, bool: _to_bool, str: str, list: parse_list, dict: _to_dict}


def _validate_lr_mult(factors):
    """`factors` (part → learning-rate factor) with known parts and positive float factors, or RecipeError."""
    checked = {}
    for part, factor in factors.items():
        if part not in LR_MULT_PARTS:
            raise RecipeError(f"--lr_mult.{part}: " + unknown_message("part", part, LR_MULT_PARTS))
        checked[part] = _coerce(f"lr_mult.{part}", float, factor)
        if not checked[part] > 0:
            raise RecipeError(f"--lr_mult.{part}={factor!r} must be positive; to hold a part fixed use --freeze.")
    return checked


def _validate_args(owner, field, args, options):
    """`args` checked against `options` (name → default) and coerced to the default's type."""
    checked = {}
    for key, value in args.items():
        if key not in options:
            raise RecipeError(f"--{field}.{key}: " + unknown_message(f"option of {owner}", key, options))
        default = options[key]
        kind = Optional[float] if default is None else type(default)
        checked[key] = _coerce(f"{field}.{key}", kind, value) if kind in _COERCERS or default is None else value
    return checked
