"""The heads' option ranges, checked without TensorFlow: each head's `validate_options` (the registry's
manifest names it, so recipe validation refuses a bad value before anything is built or imported)."""
from registry.options import check_range, whole_number


def validate_partial_fc_options(sample_rate, seed):
    """`partial_fc`: `sample_rate` a finite number in (0, 1], `seed` a whole number."""
    check_range("sample_rate", sample_rate, 0.0, 1.0, low_open=True, meaning="the share of classes kept per step")
    whole_number("seed", seed)


def validate_subcenter_options(k):
    """`subcenter`: `k` (sub-centres per class) a whole number >= 1."""
    whole_number("k", k, 1)
