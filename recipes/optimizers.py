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
  `torch.nn.utils.clip_grad_norm_`; the model names its parts with `assign_parts`;
- `lr_mult` ({part: factor}, default {}): a part's rate is the optimizer's (the schedule's value
  at this step) times its factor, in its update and in its decoupled weight decay, as a PyTorch
  parameter group with `lr = factor · lr` (and `LambdaLR` scaling every group alike).

Per-variable settings live in `FaceOptimizer.update_step` (one variable at a time, after the
replicas' sum and the clip), keyed by the part a variable belongs to.
"""
import contextlib
import inspect
import re

import keras
import tensorflow as tf
from keras import ops

from recipes.weight_decay import FACE_OPTIONS, NO_DECAY_NAMES, WEIGHT_DECAY_MODES
from registry import keyword_options

CLIPPED_PART = "backbone"
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
                 lr_mult=None, **kwargs):
        super().__init__(*args, **kwargs)
        if weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise ValueError(f"weight_decay_mode={weight_decay_mode!r}: choose one of {', '.join(WEIGHT_DECAY_MODES)} "
                             "(coupled = PyTorch's SGD/Adam weight_decay, decoupled = Keras'/AdamW's).")
        if isinstance(weight_decay_exclude, str):
            raise ValueError(f"weight_decay_exclude={weight_decay_exclude!r}: give a list of name substrings, "
                             "e.g. [gamma, beta] ([] decays every variable).")
        if not float(clip_grad_norm) >= 0:
            raise ValueError(f"clip_grad_norm={clip_grad_norm!r} must be >= 0 (0: no clipping).")
        self.weight_decay_mode = weight_decay_mode
        self.weight_decay_exclude = [str(name) for name in weight_decay_exclude]
        self.clip_grad_norm = float(clip_grad_norm)
        if self.weight_decay and self.weight_decay_exclude:
            self.exclude_from_weight_decay(var_names=[re.escape(name) for name in self.weight_decay_exclude])
        self.lr_mult = _checked_factors(lr_mult or {})
        self._part_of = {}
        self._rate_factor = 1.0

    def assign_parts(self, parts):
        """Name the model's parts: `parts` maps a part name ("backbone", "head", ...) to its variables."""
        self._part_of = {self._var_key(variable): name for name, variables in parts.items() for variable in variables}

    def part_of(self, variable):
        """The part `variable` belongs to (see `assign_parts`), or None."""
        return self._part_of.get(self._var_key(variable))

    def _all_reduce_sum_gradients(self, grads_and_vars):
        """Keras' sum of the replicas' gradients, then the clip of the backbone's (`clip_grad_norm`).

        Private override: Keras 3 (3.12 to 3.15) has no public hook between that sum and the update.
        """
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

    def rate_factor(self, variable):
        """The factor on the learning rate of `variable`: `lr_mult` of its part, else 1."""
        return self.lr_mult.get(self.part_of(variable), 1.0)

    def _get_current_learning_rate(self):
        rate, factor = super()._get_current_learning_rate(), getattr(self, "_rate_factor", 1.0)
        return rate if factor == 1.0 else rate * factor

    @contextlib.contextmanager
    def _rate_times(self, factor):
        """Within: `self.learning_rate` is the rate times `factor` (for Keras' own decoupled weight decay)."""
        previous, self._rate_factor = self._rate_factor, float(factor)
        try:
            yield
        finally:
            self._rate_factor = previous

    def _apply_weight_decay(self, variables):
        """Keras' decoupled decay (w ← w − lr · wd · w) in decoupled mode, lr times each part's `lr_mult`
        (private override: Keras 3 has no public switch)."""
        if self.weight_decay_mode != "decoupled":
            return
        groups = {}
        for variable in variables:
            groups.setdefault(self.rate_factor(variable), []).append(variable)
        for factor, group in groups.items():
            with self._rate_times(factor):
                super()._apply_weight_decay(group)

    def update_step(self, gradient, variable, learning_rate):
        """The Keras update of one variable at its part's rate (`lr_mult`), with wd · w added to its gradient in
        coupled mode."""
        if self.weight_decay_mode == "coupled" and self.weight_decay and self._use_weight_decay(variable):
            gradient = tf.convert_to_tensor(gradient)
            gradient = gradient + ops.cast(self.weight_decay, gradient.dtype) * ops.cast(variable, gradient.dtype)
        factor = self.rate_factor(variable)
        super().update_step(gradient, variable, learning_rate if factor == 1.0 else learning_rate * factor)

    def get_config(self):
        return {**super().get_config(), "weight_decay_mode": self.weight_decay_mode,
                "weight_decay_exclude": list(self.weight_decay_exclude), "clip_grad_norm": self.clip_grad_norm,
                "lr_mult": dict(self.lr_mult)}


def _checked_factors(lr_mult):
    """`lr_mult` as {part: positive float}, or ValueError naming the bad entry."""
    if not isinstance(lr_mult, dict):
        raise ValueError(f"lr_mult={lr_mult!r}: give {{part: factor}}, e.g. {{'backbone': 0.1}}.")
    factors = {str(part): float(factor) for part, factor in lr_mult.items()}
    for part, factor in factors.items():
        if not factor > 0:
            raise ValueError(f"lr_mult[{part!r}]={factor!r} must be positive.")
    return factors


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


def build_optimizer(name, learning_rate, **options):
    """`Face<Class>` of Keras optimizer `name` at `learning_rate` (a float or a schedule) with `options`:
    Keras' own (momentum, weight_decay, ...) and `weight_decay_mode`, `weight_decay_exclude`,
    `clip_grad_norm`, `lr_mult` (see the module's docstring)."""
    return FACE_CLASSES[name](learning_rate=learning_rate, **options)
