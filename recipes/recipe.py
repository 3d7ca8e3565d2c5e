"""`Recipe`: every setting of a training run, with validated command-line overrides."""
import dataclasses
import difflib
import typing
from typing import Optional

from registry import BACKBONES, CALLBACKS, DATASETS, HEADS, LOSSES


class RecipeError(ValueError):
    """A bad recipe field or value; the message says which and what to do."""


@dataclasses.dataclass
class Recipe:
    """A training run. Defaults are the spec's: ResNet50V2, 512-d, adamax, 0.001 then decay, batch 128."""

    name: str = "softmax"
    # model
    backbone: str = "resnet50v2"
    backbone_weights: Optional[str] = None
    embedding_size: int = 512
    dropout: float = 0.1
    head: str = "norm_dense"
    loss: str = "softmax"
    loss_args: dict = dataclasses.field(default_factory=dict)
    center_factor: float = 0.0
    centers_file: Optional[str] = None
    # optimisation
    optimizer: str = "adamax"
    lr: float = 0.001
    lr_schedule: str = "constant_then_exponential"
    lr_schedule_args: dict = dataclasses.field(default_factory=dict)
    epochs: int = 200
    batch_size: int = 128
    steps_per_epoch: Optional[int] = None
    jit_compile: bool = False
    # distribution (batch_size is per replica; global batch = batch_size × replicas)
    strategy: str = "auto"
    cpu_replicas: int = 0
    sync_batchnorm: bool = False
    mixed_precision: bool = False
    # data
    dataset: str = "auto"
    data: Optional[str] = None
    min_images: int = 1
    max_classes: Optional[int] = None
    image_size: int = 112
    augment: list = dataclasses.field(default_factory=lambda: ["flip"])
    eval_bins: list = dataclasses.field(default_factory=list)
    eval_batch_size: int = 128
    eval_monitor: Optional[str] = None
    eval_every_steps: int = 0
    # run
    seed: int = 0
    deterministic: bool = False
    runs_dir: str = "runs"
    keep_checkpoints: int = 3
    plugins: list = dataclasses.field(default_factory=list)
    verbose: int = 2
    # experiment tracking (Weights & Biases); `name` is the recipe, so the wandb run's name is `run_name`
    wandb: str = "auto"  # auto (online with an API key, else offline) | online | offline | disabled
    wandb_project: str = "face-recipes"
    wandb_entity: Optional[str] = None
    wandb_group: Optional[str] = None  # None: the recipe name
    tags: list = dataclasses.field(default_factory=list)
    run_name: Optional[str] = None  # None: the run folder's name

    def replace(self, **overrides):
        """A copy with `overrides` (field → value, or 'loss_args.key' → value) coerced and validated.

        Changing `loss` or `lr_schedule` without giving its `*_args` starts those args empty.
        """
        values = dataclasses.asdict(self)
        for key, value in overrides.items():
            field, _, sub_key = key.partition(".")
            if field not in values:
                raise RecipeError(_unknown("recipe field", key, values))
            if sub_key:
                if not isinstance(values[field], dict):
                    raise RecipeError(f"--{key}: '{field}' is not a dict field; use --{field}=VALUE.")
                values[field] = {**values[field], sub_key: value}
            else:
                values[field] = _coerce(field, _FIELD_TYPES[field], value)
        for field in ("loss", "lr_schedule"):
            changed = values[field] != getattr(self, field)
            if changed and not any(key.startswith(f"{field}_args") for key in overrides):
                values[f"{field}_args"] = {}
        recipe = Recipe(**values)
        recipe.validate()
        return recipe

    def validate(self):
        """Check names against the registries and values against their ranges; raise RecipeError."""
        for field, registry in (("backbone", BACKBONES), ("head", HEADS), ("loss", LOSSES), ("lr_schedule", CALLBACKS),
                                ("dataset", DATASETS)):
            name = getattr(self, field)
            if field == "dataset" and name == "auto":
                continue
            if name not in registry:
                raise RecipeError(f"--{field}={name!r}: " + _unknown(f"{registry.name[:-1]}", name, registry.names()))
        for field in ("embedding_size", "epochs", "batch_size", "image_size", "eval_batch_size"):
            if getattr(self, field) < 1:
                raise RecipeError(f"--{field}={getattr(self, field)!r} must be a positive integer.")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise RecipeError(f"--steps_per_epoch={self.steps_per_epoch!r} must be a positive integer or None.")
        if not 0.0 <= self.dropout < 1.0:
            raise RecipeError(f"--dropout={self.dropout!r} must be in [0, 1).")
        if self.lr <= 0:
            raise RecipeError(f"--lr={self.lr!r} must be positive.")
        from recipes.distribution import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise RecipeError(f"--strategy={self.strategy!r}: " + _unknown("strategy", self.strategy, STRATEGIES))
        if self.cpu_replicas < 0:
            raise RecipeError(f"--cpu_replicas={self.cpu_replicas!r} must be >= 0 (0 or 1 = do not split the CPU).")
        if self.center_factor < 0:
            raise RecipeError(f"--center_factor={self.center_factor!r} must be >= 0 (0 = no added center loss).")
        if self.wandb not in ("auto", "online", "offline", "disabled"):
            raise RecipeError(f"--wandb={self.wandb!r}: " + _unknown(
                "wandb mode", self.wandb, ["auto", "online", "offline", "disabled"]))
        self.loss_args = _validate_args(f"loss '{self.loss}'", "loss_args", self.loss_args, _loss_options(self.loss))
        self.lr_schedule_args = _validate_args(
            f"schedule '{self.lr_schedule}'", "lr_schedule_args", self.lr_schedule_args, _schedule_options(self.lr_schedule)
        )

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls):
        return [field.name for field in dataclasses.fields(cls)]


_FIELD_TYPES = typing.get_type_hints(Recipe)


def _unknown(kind, key, known):
    close = difflib.get_close_matches(str(key), list(known), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {key!r}.{hint} Known: {', '.join(sorted(known))}."


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


def _validate_args(owner, field, args, options):
    """`args` checked against `options` (name → default) and coerced to the default's type."""
    checked = {}
    for key, value in args.items():
        if key not in options:
            raise RecipeError(f"--{field}.{key}: " + _unknown(f"option of {owner}", key, options))
        default = options[key]
        kind = Optional[float] if default is None else type(default)
        checked[key] = _coerce(f"{field}.{key}", kind, value)
    return checked


def _loss_options(name):
    from losses.base import loss_options

    return loss_options(name)


def _schedule_options(name):
    from callbacks.lr_schedules import schedule_options

    return schedule_options(name)
