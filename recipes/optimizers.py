"""Keras optimizers by name, with weight decay in Keras' or PyTorch's meaning and a clipped backbone gradient.

`build_optimizer(name, learning_rate, **options)` returns `Face<Class>`, a subclass of the Keras
optimizer `name` whose `apply_gradients` alone does the whole update:

- `weight_decay_mode="decoupled"` (the default): Keras' decay, w ← w − lr · wd · w before the
  update (AdamW's; for SGD with momentum μ it decays about 1/(1 − μ) times less than PyTorch's);
- `weight_decay_mode="coupled"`: PyTorch's `torch.optim.SGD/Adam(weight_decay=wd)`, wd · w added
  to the gradient before momentum / moment estimates (L2 regularisation);
- `weight_decay_exclude`: substrings of variable names left undecayed in either mode (default
  `NO_DECAY_NAMES`; `[]` decays every variable, as arcface_torch);
- `clip_grad_norm` (0: off): the gradients of the "backbone" part, summed over replicas and
  unscaled (inside a `LossScaleOptimizer`), are clipped to this global L2 norm as
  `torch.nn.utils.clip_grad_norm_`; the model names its parts with `assign_parts`.

Per-variable settings live in `FaceOptimizer.update_step` (one variable at a time, after the
replicas' sum and the clip), keyed by the part a variable belongs to.
"""
import inspect
import re

import keras
import tensorflow as tf
from keras import ops

from registry import OptionError, check_range, keyword_options, whole_number

# Default substrings of variable names that weight decay leaves alone: BatchNorm γ/β (decaying them only
# rescales what the next layer undoes), PReLU slopes (decay pulls them towards ReLU) and biases, as timm's
# "no decay on 1-d parameters". arcface_torch decays them all (weight_decay_exclude=[]).
NO_DECAY_NAMES = ("gamma", "beta", "bias", "alpha")
WEIGHT_DECAY_MODES = ("decoupled", "coupled")
CLIPPED_PART = "backbone"
# Options every optimizer of `build_optimizer` takes besides Keras' own ({option: default}).
FACE_OPTIONS = {"weight_decay_mode": "decoupled", "weight_decay_exclude": list(NO_DECAY_NAMES)}
# torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6)
CLIP_EPSILON = 1e-6


def clip_by_global_norm(gradients, max_norm):
    """`gradients` (list of tensors) times min(1, max_norm / (‖g‖ + 1e-6)), ‖g‖ the L2 norm of all of them.

    `torch.nn.utils.clip_grad_norm_(parameters, max_norm)` (norm_type 2). A non-finite norm
    gives non-finite gradients, as there (a loss-scaled step is skipped before it gets here).
    """
    gradients = [ops.convert_to_tensor(gradient) for gradient in gradients]
    norm = ops.sqrt(sum(ops.sum(ops.square(ops.cast(gradient, "float32"))) for gradient in gradients))
    factor = ops.minimum(1.0, max_norm / (norm + CLIP_EPSILON))
    return [gradient * ops.cast(factor, gradient.dtype) for gradient in gradients]


class FaceOptimizer:
    """Mixin before a Keras optimizer class: weight decay modes, decay exclusions, a clipped part.

    PyTorch equivalence (coupled mode): SGD equals `torch.optim.SGD` exactly at a constant rate
    (Keras keeps lr inside the momentum buffer, m ← μm − lr·g, where PyTorch keeps it outside,
    b ← μb + g, w ← w − lr·b: under a changing rate the two differ by lr's change over the
    momentum's memory); Adam equals `torch.optim.Adam` up to the placement of ε (Keras adds it to
    √v, PyTorch to √v̂), negligible unless gradients are of the order of ε.
    """

    def __init__(self, *args, weight_decay_mode="decoupled", weight_decay_exclude=NO_DECAY_NAMES, clip_grad_norm=0.0,
                 **kwargs):
        super().__init__(*args, **kwargs)
        validate_optimizer_options({"weight_decay_mode": weight_decay_mode, "weight_decay_exclude": weight_decay_exclude,
                                    "clip_grad_norm": clip_grad_norm})
        self.weight_decay_mode = weight_decay_mode
        self.weight_decay_exclude = [str(name) for name in weight_decay_exclude]
        self.clip_grad_norm = float(clip_grad_norm)
        if self.weight_decay and self.weight_decay_exclude:
            self.exclude_from_weight_decay(var_names=[re.escape(name) for name in self.weight_decay_exclude])
        self._part_of = {}

    def assign_parts(self, parts):
        """Name the model's parts: `parts` maps a part name ("backbone", "head", ...) to its variables."""
        self._part_of = {self._var_key(variable): name for name, variables in parts.items() for variable in variables}

    def part_of(self, variable):
        """The part `variable` belongs to (see `assign_parts`), or None."""
        return self._part_of.get(self._var_key(variable))

    def _all_reduce_sum_gradients(self, grads_and_vars):
        """Keras' sum of the replicas' gradients, then the clip of the backbone's (`clip_grad_norm`)."""
        pairs = list(super()._all_reduce_sum_gradients(grads_and_vars))
        if not self.clip_grad_norm:
            return pairs
        clipped = [index for index, (gradient, variable) in enumerate(pairs)
                   if gradient is not None and self.part_of(variable) == CLIPPED_PART]
        if clipped:
            for index, gradient in zip(clipped, clip_by_global_norm([pairs[i][0] for i in clipped],
                                                                    self.clip_grad_norm)):
                pairs[index] = (gradient, pairs[index][1])
        return pairs

    def _apply_weight_decay(self, variables):
        if self.weight_decay_mode == "decoupled":
            super()._apply_weight_decay(variables)

    def update_step(self, gradient, variable, learning_rate):
        """The Keras update of one variable, with wd · w added to its gradient in coupled mode."""
        if self.weight_decay_mode == "coupled" and self.weight_decay and self._use_weight_decay(variable):
            gradient = tf.convert_to_tensor(gradient)
            gradient = gradient + ops.cast(self.weight_decay, gradient.dtype) * ops.cast(variable, gradient.dtype)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "weight_decay_mode": self.weight_decay_mode,
                "weight_decay_exclude": list(self.weight_decay_exclude), "clip_grad_norm": self.clip_grad_norm}


def optimizer_classes():
    """{lower-case name: class} of every optimizer in `keras.optimizers` ('sgd', 'adamw', 'adamax', ...)."""
    return {
        name.lower(): cls for name, cls in vars(keras.optimizers).items()
        if inspect.isclass(cls) and issubclass(cls, keras.optimizers.Optimizer) and cls is not keras.optimizers.Optimizer
        and name != "LossScaleOptimizer"
    }


def _face_class(base):
    """`Face<base>`: `FaceOptimizer` on the Keras optimizer class `base`, registered for saving as faces>Face<base>."""
    cls = type(f"Face{base.__name__}", (FaceOptimizer, base), {"__doc__": f"{base.__name__} with FaceOptimizer's "
                                                                          "weight decay modes and clipping."})
    return keras.saving.register_keras_serializable(package="faces", name=cls.__name__)(cls)


FACE_CLASSES = {name: _face_class(cls) for name, cls in optimizer_classes().items()}


def optimizer_options(name):
    """{option: default} of optimizer `name` besides the learning rate (momentum, weight_decay, weight_decay_mode, ...)."""
    return {**keyword_options(optimizer_classes()[name], skip=("learning_rate", "name")),
            **{key: list(value) if isinstance(value, list) else value for key, value in FACE_OPTIONS.items()}}


# Ranges of Keras optimizer options: (low, high, low end excluded, high end excluded); None: unbounded.
MOMENTUM_LIKE = (0.0, 1.0, False, True)
OPTION_RANGES = {
    **{name: MOMENTUM_LIKE for name in ("momentum", "beta_1", "beta_2", "rho", "ema_momentum", "adam_beta_1",
                                        "adam_beta_2")},
    **{name: (0.0, None, True, False) for name in ("epsilon", "clipnorm", "clipvalue", "global_clipnorm",
                                                   "loss_scale_factor")},
    **{name: (0.0, None, False, False) for name in ("weight_decay", "adam_weight_decay", "initial_accumulator_value",
                                                    "l1_regularization_strength", "l2_regularization_strength",
                                                    "clip_grad_norm")},
}
WHOLE_NUMBER_OPTIONS = ("gradient_accumulation_steps", "ema_overwrite_frequency", "ns_steps")


def validate_optimizer_options(options):
    """Refuse (OptionError) optimizer option values out of range, before an optimizer is built: momentum
    and β's in [0, 1), ε and Keras' clipping > 0, weight decay and `clip_grad_norm` >= 0, step counts whole
    numbers >= 1, every other number finite; `weight_decay_mode` one of WEIGHT_DECAY_MODES,
    `weight_decay_exclude` a list. None (Keras' "off") passes."""
    for name, value in options.items():
        if name == "weight_decay_mode" and value not in WEIGHT_DECAY_MODES:
            raise OptionError(name, value, f"must be one of {', '.join(WEIGHT_DECAY_MODES)} (coupled = PyTorch's "
                                           "SGD/Adam weight_decay, decoupled = Keras'/AdamW's).")
        if name == "weight_decay_exclude" and isinstance(value, str):
            raise OptionError(name, value, "must be a list of name substrings, e.g. [gamma, beta] ([] decays every "
                                           "variable).")
        if value is None or isinstance(value, (bool, str, list, tuple)):
            continue
        if name in WHOLE_NUMBER_OPTIONS:
            whole_number(name, value, 1)
        elif name in OPTION_RANGES:
            low, high, low_open, high_open = OPTION_RANGES[name]
            check_range(name, value, low, high, low_open, high_open)
        elif isinstance(value, (int, float)):
            check_range(name, value)


def build_optimizer(name, learning_rate, **options):
    """`Face<Class>` of Keras optimizer `name` at `learning_rate` (a float or a schedule) with `options`:
    Keras' own (momentum, weight_decay, ...) and `weight_decay_mode`, `weight_decay_exclude`,
    `clip_grad_norm` (see the module's docstring), checked by `validate_optimizer_options` first."""
    validate_optimizer_options(options)
    return FACE_CLASSES[name](learning_rate=learning_rate, **options)
