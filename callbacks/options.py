"""The built-in callbacks' option ranges, checked without TensorFlow: each callback's `validate_options` (the
registry's manifest names it, so `--callback_args.NAME.OPTION` out of range is refused before the data scan)."""
from registry.options import check_range, whole_number
from registry.errors import OptionError

# The per-.bin metrics `VerificationCallback` logs at every epoch end as `<bin>/<metric>`.
VERIFICATION_METRICS = ("acc", "acc_std", "threshold", "best_acc", "best_threshold", "xnorm", "roc_auc",
                        "tar_at_far_1e-3", "tar_at_far_1e-2")


def validate_early_stopping_options(monitor, patience, min_delta):
    """`early_stopping`: `patience` (epochs) a whole number >= 0, `min_delta` >= 0, and a `monitor` of the form
    BIN/METRIC naming a metric the verification logs (a name without '/' is a training metric, e.g. loss)."""
    whole_number("patience", patience, 0)
    check_range("min_delta", min_delta, 0.0, meaning="the least change that counts as an improvement")
    if "/" in monitor and monitor.rsplit("/", 1)[1] not in VERIFICATION_METRICS:
        raise OptionError("monitor", monitor, "is not a metric the verification logs: use BIN/METRIC with METRIC one "
                                              f"of {', '.join(VERIFICATION_METRICS)} (e.g. lfw/acc), or loss.")


def validate_tensorboard_options(histogram_freq):
    """`tensorboard`: `histogram_freq` (epochs between weight histograms, 0: none) a whole number >= 0."""
    whole_number("histogram_freq", histogram_freq, 0)
