"""The losses' option ranges, checked without TensorFlow: each loss's `validate_options` (the registry's
manifest names it, so recipe validation refuses a bad value before anything is built or imported).

Each function takes the loss's options by name and raises `OptionError` for the first value out of
range; the loss's constructor calls the same function.
"""
from losses.presets import check_elastic_variant, check_margin_preset
from registry.errors import OptionError
from registry.options import check_range

MARGIN_GRADIENTS = ("exact", "straight_through")
# The built-in losses that hold a center loss (`losses.combined.find_center_loss` finds one in what they build),
# so that `--center_factor` is checked against them without building them.
CENTER_LOSSES = ("center", "center_arcface", "center_softmax")


def check_margin_gradient(margin_gradient):
    """`margin_gradient` if it is one of MARGIN_GRADIENTS, else OptionError."""
    if margin_gradient not in MARGIN_GRADIENTS:
        raise OptionError("margin_gradient", margin_gradient, "must be exact (the analytic gradient) or "
                          "straight_through (arcface_torch since December 2022: the margin gets no gradient).")
    return margin_gradient


def check_scale(scale):
    """Refuse a logit scale s that is not a finite number > 0."""
    check_range("scale", scale, 0.0, low_open=True, meaning="the logit scale s")


def check_margins(**margins):
    """Refuse a margin that is given (not None) and not a finite number."""
    for name, value in margins.items():
        if value is not None:
            check_range(name, value)


def validate_margin_options(margin1, margin2, margin3, scale, preset, margin_gradient):
    """`arcface` (MarginLoss): a known `preset` and `margin_gradient`, finite margins, `scale` > 0."""
    check_margin_gradient(margin_gradient)
    check_margin_preset(preset)
    check_margins(margin1=margin1, margin2=margin2, margin3=margin3)
    check_scale(scale)


def validate_adaface_options(margin, h, scale, t_alpha):
    """`adaface`: finite `margin` and `h`, `scale` > 0, `t_alpha` in (0, 1]."""
    check_margins(margin=margin, h=h)
    check_scale(scale)
    check_range("t_alpha", t_alpha, 0.0, 1.0, low_open=True, meaning="the weight of each batch's statistics")


def validate_magface_options(lower_norm, upper_norm, lower_margin, upper_margin, lambda_g, scale):
    """`magface`: 0 < lower_norm < upper_norm, finite margins, `lambda_g` >= 0, `scale` > 0."""
    check_range("lower_norm", lower_norm, 0.0, low_open=True, meaning="l_a, the smallest feature norm")
    check_range("upper_norm", upper_norm, lower_norm, low_open=True, meaning="u_a, above lower_norm")
    check_margins(lower_margin=lower_margin, upper_margin=upper_margin)
    check_range("lambda_g", lambda_g, 0.0, meaning="the weight of the norm regulariser")
    check_scale(scale)


def validate_curricularface_options(margin, scale):
    """`curricularface`: a finite `margin`, `scale` > 0."""
    check_margins(margin=margin)
    check_scale(scale)


def validate_elastic_options(variant, margin, sigma, scale, margin_gradient):
    """`elasticface`: a known `variant` and `margin_gradient`, a finite `margin`, `sigma` >= 0, `scale` > 0."""
    check_margin_gradient(margin_gradient)
    check_elastic_variant(variant)
    check_margins(margin=margin)
    if sigma is not None:
        check_range("sigma", sigma, 0.0, meaning="the std of the per-sample margin")
    check_scale(scale)


def validate_center_options(alpha):
    """`center`: the centre step `alpha` in [0, 1]."""
    check_range("alpha", alpha, 0.0, 1.0, meaning="the centre step; 0 keeps the centres fixed")


def validate_center_softmax_options(center_factor, center_alpha):
    """`center_softmax`: `center_factor` >= 0, the centre step `center_alpha` in [0, 1]."""
    check_range("center_factor", center_factor, 0.0, meaning="the weight of the center loss")
    check_range("center_alpha", center_alpha, 0.0, 1.0, meaning="the centre step; 0 keeps the centres fixed")


def validate_center_arcface_options(center_factor, center_alpha, margin1, margin2, margin3, scale, preset,
                                    margin_gradient):
    """`center_arcface`: `center_softmax`'s rules and `arcface`'s."""
    validate_center_softmax_options(center_factor, center_alpha)
    validate_margin_options(margin1, margin2, margin3, scale, preset, margin_gradient)
