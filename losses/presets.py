"""Option defaults that losses resolve from other options, computed without TensorFlow (so `show` prints the
values a run will use): the ArcFace family's margin presets and ElasticFace's per-variant margin and σ."""
from registry.errors import OptionError
from registry.options import check_range

# (margin1, margin2, margin3) in the spec's order. "spec": the seed document's default; "arcface" and
# "cosface": the papers'; "sphereface": SphereFace's multiplicative margin as insightface trains it in the
# combined form (recognition/arcface_paddle/utils/losses.py, SphereFace m1 = 1.35); "combined":
# insightface's combined margin (recognition/arcface_mxnet/sample_config.py, loss.combined: m1 1.0,
# m2 0.3 added to the angle, m3 0.2 subtracted from the cosine), the seed's commented-out alternative.
MARGIN_PRESETS = {
    "spec": (0.9, 0.4, 0.15),
    "arcface": (1.0, 0.0, 0.5),
    "cosface": (1.0, 0.35, 0.0),
    "sphereface": (1.35, 0.0, 0.0),
    "combined": (1.0, 0.2, 0.3),
}

# ElasticFace variant → (margin, σ, σ with plus=True), from fdbtrs/ElasticFace `config/config.py`.
ELASTIC_DEFAULTS = {
    "arc": (0.5, 0.05, 0.0175),
    "cos": (0.35, 0.05, 0.02),
}


def check_margin_preset(preset):
    """Refuse (OptionError) a `preset` that is not one of MARGIN_PRESETS."""
    if preset not in MARGIN_PRESETS:
        raise OptionError("preset", preset, f"is not a margin preset; choose one of {sorted(MARGIN_PRESETS)}.")


def check_elastic_variant(variant):
    """Refuse (OptionError) a `variant` that is not one of ELASTIC_DEFAULTS."""
    if variant not in ELASTIC_DEFAULTS:
        raise OptionError("variant", variant, f"is not an ElasticFace variant; choose one of {sorted(ELASTIC_DEFAULTS)}.")


def preset_margins(margin1, margin2, margin3, preset):
    """(m1, m2, m3) floats: each margin given (not None) as is, the others from `MARGIN_PRESETS[preset]`."""
    check_margin_preset(preset)
    given = (margin1, margin2, margin3)
    return tuple(float(default if value is None else value) for value, default in zip(given, MARGIN_PRESETS[preset]))


def resolve_margin_options(options):
    """`options` of a margin loss (margin1..3, preset, ...) with the three margins as its preset resolves them."""
    margins = preset_margins(*(options.get(key) for key in ("margin1", "margin2", "margin3")),
                             options.get("preset", "spec"))
    return {**options, **dict(zip(("margin1", "margin2", "margin3"), margins))}


def elastic_margin_sigma(variant, margin, sigma, plus):
    """(margin, σ) floats of ElasticFace `variant`: each given (not None) as is, else the variant's official value."""
    check_elastic_variant(variant)
    default_margin, default_sigma, plus_sigma = ELASTIC_DEFAULTS[variant]
    sigma = float((plus_sigma if plus else default_sigma) if sigma is None else sigma)
    check_range("sigma", sigma, 0.0, meaning="the std of the per-sample margin")
    return float(default_margin if margin is None else margin), sigma


def resolve_elastic_options(options):
    """`options` of ElasticFace (variant, margin, sigma, plus, ...) with margin and σ as the variant resolves them."""
    margin, sigma = elastic_margin_sigma(options.get("variant", "arc"), options.get("margin"), options.get("sigma"),
                                         bool(options.get("plus", False)))
    return {**options, "margin": margin, "sigma": sigma}
