"""The optimizers' option ranges, checked without importing Keras (so recipe validation needs no TensorFlow)."""
from recipes.weight_decay import WEIGHT_DECAY_MODES
from registry.errors import OptionError
from registry.options import check_range, whole_number

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
