"""The learning-rate schedules' option ranges, checked without TensorFlow: each schedule's `validate_options`
(the registry's manifest names it, so recipe validation refuses a bad value before anything is built).

A schedule's validator may also name `base_lr` and `epochs`, which the trainer passes to every
schedule: a warm-up is judged against the run's length.
"""
from registry.options import check_range, whole_number


def check_warmup(warmup_epochs, epochs):
    """Refuse a warm-up that is negative or not shorter than the run: a warm-up as long as the run ends before
    the rate reaches base_lr, and never decays."""
    check_range("warmup_epochs", warmup_epochs, 0.0, float(epochs), high_open=True,
                meaning=f"shorter than the run's --epochs={epochs}, or the rate never reaches --lr and never decays")


def validate_exponential_options(constant_epochs, decay):
    """`constant_then_exponential`: `constant_epochs` a whole number >= 0, a finite `decay`."""
    whole_number("constant_epochs", constant_epochs, 0)
    check_range("decay", decay, meaning="the rate's exponential decay per epoch")


def validate_step_options(step_epochs, factor):
    """`step`: `step_epochs` a whole number >= 1, `factor` > 0 (above 1 grows the rate, as PyTorch's StepLR allows)."""
    whole_number("step_epochs", step_epochs, 1)
    check_range("factor", factor, 0.0, low_open=True, meaning="the rate's multiplier at each step")


def validate_cosine_options(base_lr, epochs, warmup_epochs, min_lr):
    """`cosine`: a warm-up shorter than the run (`check_warmup`), `min_lr` in [0, base_lr]."""
    check_warmup(warmup_epochs, epochs)
    check_range("min_lr", min_lr, 0.0, float(base_lr), meaning="the rate at the end, at most --lr")


def validate_polynomial_options(epochs, warmup_epochs, power):
    """`polynomial`: a warm-up shorter than the run (`check_warmup`), `power` > 0."""
    check_warmup(warmup_epochs, epochs)
    check_range("power", power, 0.0, low_open=True, meaning="the decay's exponent")


def validate_plateau_options(factor, patience, min_lr):
    """`reduce_on_plateau`: `factor` in (0, 1), `patience` a whole number >= 0, `min_lr` >= 0."""
    check_range("factor", factor, 0.0, 1.0, low_open=True, high_open=True, meaning="the rate's multiplier")
    whole_number("patience", patience, 0)
    check_range("min_lr", min_lr, 0.0)
