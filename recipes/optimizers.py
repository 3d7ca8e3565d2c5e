"""Keras optimizers by name, with decoupled weight decay that spares normalisation, PReLU and bias parameters."""
import inspect

import keras

from registry import check_range, keyword_options, whole_number

# Substrings of variable names that weight decay leaves alone: BatchNorm γ/β (decaying them only
# rescales what the next layer undoes, and fights the normalisation), PReLU slopes (decay pulls
# them towards ReLU) and biases; as arcface_torch's users and timm exclude them (1-d parameters).
NO_DECAY_NAMES = ("gamma", "beta", "bias", "alpha")


def optimizer_classes():
    """{lower-case name: class} of every optimizer in `keras.optimizers` ('sgd', 'adamw', 'adamax', ...)."""
    return {
        name.lower(): cls for name, cls in vars(keras.optimizers).items()
        if inspect.isclass(cls) and issubclass(cls, keras.optimizers.Optimizer) and cls is not keras.optimizers.Optimizer
        and name != "LossScaleOptimizer"
    }


def optimizer_options(name):
    """{option: default} of optimizer `name` besides the learning rate (e.g. momentum, weight_decay)."""
    return keyword_options(optimizer_classes()[name], skip=("learning_rate", "name"))


# Ranges of Keras optimizer options: (low, high, low end excluded, high end excluded); None: unbounded.
MOMENTUM_LIKE = (0.0, 1.0, False, True)
OPTION_RANGES = {
    **{name: MOMENTUM_LIKE for name in ("momentum", "beta_1", "beta_2", "rho", "ema_momentum", "adam_beta_1",
                                        "adam_beta_2")},
    **{name: (0.0, None, True, False) for name in ("epsilon", "clipnorm", "clipvalue", "global_clipnorm",
                                                   "loss_scale_factor")},
    **{name: (0.0, None, False, False) for name in ("weight_decay", "adam_weight_decay", "initial_accumulator_value",
                                                    "l1_regularization_strength", "l2_regularization_strength")},
}
WHOLE_NUMBER_OPTIONS = ("gradient_accumulation_steps", "ema_overwrite_frequency", "ns_steps")


def validate_optimizer_options(options):
    """Refuse (OptionError) optimizer option values out of range, before an optimizer is built: momentum
    and β's in [0, 1), ε and clipping > 0, weight decay >= 0, step counts whole numbers >= 1, every other
    number finite. None (Keras' "off") passes."""
    for name, value in options.items():
        if value is None or isinstance(value, (bool, str)):
            continue
        if name in WHOLE_NUMBER_OPTIONS:
            whole_number(name, value, 1)
        elif name in OPTION_RANGES:
            low, high, low_open, high_open = OPTION_RANGES[name]
            check_range(name, value, low, high, low_open, high_open)
        elif isinstance(value, (int, float)):
            check_range(name, value)


def build_optimizer(name, learning_rate, **options):
    """Optimizer `name` at `learning_rate` (a float or a schedule) with `options`.

    `weight_decay` is Keras' decoupled decay (each step w ← w − lr · wd · w, as AdamW; for SGD
    this differs from PyTorch's L2-in-gradient `weight_decay` by the momentum's 1/(1−μ) scaling),
    applied to kernels and class centres but not to variables named in `NO_DECAY_NAMES`.
    """
    validate_optimizer_options(options)
    optimizer = optimizer_classes()[name](learning_rate=learning_rate, **options)
    if optimizer.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return optimizer
