"""`combined_margin_logits` and `MarginLoss` against a plain NumPy re-computation of the formula."""
import math

import numpy as np
import pytest
import tensorflow as tf

from losses import MarginLoss, combined_margin_logits
from losses.presets import MARGIN_PRESETS

SCALE = 64.0
PRESETS = sorted(MARGIN_PRESETS.items())


def reference_logits(cosine, labels, margin1, margin2, margin3, scale):
    """The DESIGN.md formula, row by row in float64: margin on the target class unless m1·θ + m3 > π."""
    cosine = np.clip(np.asarray(cosine, dtype=np.float64), -1.0, 1.0)
    logits = scale * cosine
    for row, label in enumerate(labels):
        theta = np.arccos(cosine[row, label])
        angle = margin1 * theta + margin3
        if angle <= math.pi:
            logits[row, label] = scale * (np.cos(angle) - margin2)
    return logits


def assert_logits_match(actual, expected, scale=SCALE):
    """Compare in cosine units (divided by the scale) to 1e-5."""
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64) / scale, expected / scale, rtol=1e-5, atol=1e-5)


def test_presets_are_the_specs_values():
    assert MARGIN_PRESETS["spec"] == (0.9, 0.4, 0.15)
    assert MARGIN_PRESETS["arcface"] == (1.0, 0.0, 0.5)
    assert MARGIN_PRESETS["cosface"] == (1.0, 0.35, 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("preset, margins", PRESETS)
def test_random_cosines_match_reference(seed, preset, margins):
    rng = np.random.default_rng(seed)
    cosine = rng.uniform(-1.0, 1.0, size=(16, 50)).astype(np.float32)
    labels = rng.integers(0, 50, size=16)
    actual = combined_margin_logits(cosine, labels, *margins, SCALE).numpy()
    expected = reference_logits(cosine, labels, *margins, SCALE)
    assert actual.dtype == np.float32 and actual.shape == (16, 50)
    assert_logits_match(actual, expected)
    non_target = np.ones_like(cosine, dtype=bool)
    non_target[np.arange(16), labels] = False
    np.testing.assert_allclose(actual[non_target], SCALE * cosine[non_target], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("preset, margins", PRESETS)
def test_scale_one_matches_reference_directly(preset, margins):
    rng = np.random.default_rng(7)
    cosine = rng.uniform(-1.0, 1.0, size=(16, 50)).astype(np.float32)
    labels = rng.integers(0, 50, size=16)
    actual = combined_margin_logits(cosine, labels, *margins, 1.0).numpy()
    np.testing.assert_allclose(actual, reference_logits(cosine, labels, *margins, 1.0), rtol=1e-5, atol=1e-5)


EDGE_COSINES = [1.0, -1.0, 1.0 - 1e-7, -(1.0 - 1e-7), 1.0 + 1e-6, -1.0 - 1e-6, 0.0]


@pytest.mark.parametrize("preset, margins", PRESETS)
def test_edge_cosines_theta_near_zero_and_pi(preset, margins):
    cosine = np.tile(np.float32([[0.3, -0.2, 0.1]]), (len(EDGE_COSINES), 1))
    cosine[:, 1] = np.float32(EDGE_COSINES)
    labels = np.ones(len(EDGE_COSINES), dtype=np.int64)
    actual = combined_margin_logits(cosine, labels, *margins, SCALE).numpy()
    assert np.all(np.isfinite(actual))
    assert_logits_match(actual, reference_logits(cosine, labels, *margins, SCALE))


def test_cos_one_and_minus_one_exact_values():
    labels = np.array([0, 0])
    cosine = np.float32([[1.0, 0.5], [-1.0, 0.5]])
    spec = combined_margin_logits(cosine, labels, 0.9, 0.4, 0.15, 1.0).numpy()
    # θ = 0: cos(0.15) − 0.4; θ = π: 0.9π + 0.15 < π, so cos(0.9π + 0.15) − 0.4.
    np.testing.assert_allclose(spec[:, 0], [math.cos(0.15) - 0.4, math.cos(0.9 * math.pi + 0.15) - 0.4], atol=1e-5)
    cosface = combined_margin_logits(cosine, labels, 1.0, 0.35, 0.0, 1.0).numpy()
    np.testing.assert_allclose(cosface[:, 0], [1.0 - 0.35, -1.0 - 0.35], atol=1e-5)
    np.testing.assert_allclose(spec[:, 1], [0.5, 0.5], atol=1e-7)


def test_guard_leaves_target_at_plain_cosine_when_angle_passes_pi():
    # ArcFace (m3 = 0.5): m1·θ + m3 > π for θ > π − 0.5, i.e. cos θ < cos(π − 0.5) ≈ −0.8776.
    target = np.float32([-0.88, -0.9, -0.95, -0.999, -1.0, -0.87, 0.0])
    cosine = np.stack([np.full_like(target, 0.2), target], axis=1)
    labels = np.ones(len(target), dtype=np.int64)
    actual = combined_margin_logits(cosine, labels, 1.0, 0.0, 0.5, SCALE).numpy()
    guarded = np.arccos(target.astype(np.float64)) + 0.5 > math.pi
    assert guarded.tolist() == [True, True, True, True, True, False, False]
    np.testing.assert_allclose(actual[guarded, 1], SCALE * target[guarded], rtol=1e-6)
    assert_logits_match(actual, reference_logits(cosine, labels, 1.0, 0.0, 0.5, SCALE))
    # The guard is per row: where it does not trigger, the margin is applied.
    np.testing.assert_allclose(actual[5, 1] / SCALE, math.cos(math.acos(-0.87) + 0.5), atol=1e-5)


@pytest.mark.parametrize("preset, margins", PRESETS)
def test_gradient_finite_at_cos_plus_minus_one(preset, margins):
    cosine = tf.Variable(np.float32([[1.0, -1.0, 0.2], [-1.0, 1.0, 0.2], [1.0 - 1e-7, -(1.0 - 1e-7), 0.0]]))
    labels = np.array([0, 0, 1])
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(combined_margin_logits(cosine, labels, *margins, SCALE))
    gradient = tape.gradient(total, cosine).numpy()
    assert np.all(np.isfinite(gradient)), gradient
    # Non-target gradient is exactly the scale.
    assert gradient[0, 1] == pytest.approx(SCALE) and gradient[2, 2] == pytest.approx(SCALE)


@pytest.mark.parametrize("preset", sorted(MARGIN_PRESETS))
def test_margin_loss_zero_embedding_has_no_nan(preset):
    loss_layer = MarginLoss(num_classes=4, embedding_size=8, preset=preset)
    embeddings = tf.Variable(np.zeros((3, 8), np.float32))
    kernel = tf.Variable(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))
    labels = np.array([0, 1, 3])
    with tf.GradientTape() as tape:
        logits = tf.matmul(embeddings, kernel / tf.norm(kernel, axis=0, keepdims=True))
        loss = loss_layer(labels, embeddings, logits)
        total = tf.reduce_sum(loss)
    grads = tape.gradient(total, [embeddings, kernel])
    assert np.all(np.isfinite(loss.numpy()))
    for grad in grads:
        assert grad is not None and np.all(np.isfinite(grad.numpy()))


def test_margin_loss_is_cross_entropy_of_margin_logits_on_normalised_cosine():
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(6, 8)).astype(np.float32) * 3.0
    kernel = rng.normal(size=(8, 5))
    kernel /= np.linalg.norm(kernel, axis=0, keepdims=True)
    logits = (embeddings @ kernel).astype(np.float32)
    labels = rng.integers(0, 5, size=6)
    loss = MarginLoss(5, 8, margin1=0.9, margin2=0.4, margin3=0.15, scale=SCALE)(labels, embeddings, logits).numpy()
    cosine = logits / np.linalg.norm(embeddings.astype(np.float64), axis=1, keepdims=True)
    margined = reference_logits(cosine, labels, 0.9, 0.4, 0.15, SCALE)
    shifted = margined - margined.max(axis=1, keepdims=True)
    expected = -(shifted[np.arange(6), labels] - np.log(np.exp(shifted).sum(axis=1)))
    np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-4)


def test_explicit_margin_overrides_preset_and_unknown_preset_is_rejected():
    layer = MarginLoss(5, 8, preset="arcface", margin2=0.2)
    assert (layer.margin1, layer.margin2, layer.margin3) == (1.0, 0.2, 0.5)
    with pytest.raises(ValueError, match="preset"):
        MarginLoss(5, 8, preset="spherical")


def test_float16_cosine_gives_finite_float32_logits():
    rng = np.random.default_rng(5)
    cosine = rng.uniform(-1.0, 1.0, size=(16, 50)).astype(np.float16)
    cosine[0, :3] = [1.0, -1.0, 0.0]
    labels = rng.integers(0, 50, size=16)
    labels[0] = 0
    actual = combined_margin_logits(tf.constant(cosine), labels, 0.9, 0.4, 0.15, SCALE)
    assert actual.dtype == tf.float32
    assert np.all(np.isfinite(actual.numpy()))
    assert_logits_match(actual.numpy(), reference_logits(cosine.astype(np.float32), labels, 0.9, 0.4, 0.15, SCALE))


@pytest.mark.parametrize("preset, margins", PRESETS)
def test_xla_compiled_gives_same_numbers(preset, margins):
    rng = np.random.default_rng(11)
    cosine = rng.uniform(-1.0, 1.0, size=(16, 50)).astype(np.float32)
    cosine[0, 0], cosine[1, 1] = 1.0, -1.0
    labels = rng.integers(0, 50, size=16)
    labels[:2] = [0, 1]

    @tf.function(jit_compile=True)
    def compiled(values, targets):
        with tf.GradientTape() as tape:
            tape.watch(values)
            logits = combined_margin_logits(values, targets, *margins, SCALE)
            total = tf.reduce_sum(logits)
        return logits, tape.gradient(total, values)

    logits, gradient = compiled(tf.constant(cosine), tf.constant(labels, tf.int32))
    eager = combined_margin_logits(cosine, labels, *margins, SCALE).numpy()
    np.testing.assert_allclose(logits.numpy(), eager, rtol=1e-5, atol=1e-4)
    assert_logits_match(logits.numpy(), reference_logits(cosine, labels, *margins, SCALE))
    assert np.all(np.isfinite(gradient.numpy()))


def closed_form_gradient(cosine, labels, margins, scale, margin_gradient):
    """∂ mean_i CE(s · margin_logits)_i / ∂cos (B, C) in float64: s (p − onehot) / B on every column, the target's
    times ∂target/∂cos θ_y = m1 · sin(m1θ + m3) / sin θ ("exact", inside the guard), 1 ("straight_through")."""
    margin1, _, margin3 = margins
    cosine = np.asarray(cosine, dtype=np.float64)
    logits = reference_logits(cosine, labels, *margins, scale)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    gradient = probabilities.copy()
    gradient[rows, labels] -= 1.0
    gradient *= scale / len(labels)
    if margin_gradient == "exact":
        theta = np.arccos(cosine[rows, labels])
        angle = margin1 * theta + margin3
        slope = np.where(angle <= math.pi, margin1 * np.sin(angle) / np.sin(theta), 1.0)
        gradient[rows, labels] *= slope
    return gradient


@pytest.mark.parametrize("margin_gradient", ["exact", "straight_through"])
@pytest.mark.parametrize("preset, margins", PRESETS)
def test_margin_gradient_is_the_closed_form_and_the_loss_value_does_not_change(preset, margins, margin_gradient):
    """Unit embeddings, so the layer's cosine is the logits; θ kept away from 0 and π (the exact slope's poles)."""
    rng = np.random.default_rng(13)
    cosine = rng.uniform(-0.95, 0.95, size=(12, 9)).astype(np.float32)
    labels = rng.integers(0, 9, size=12)
    cosine[0, labels[0]] = -0.93  # ArcFace's guard (θ + 0.5 > π) on this row
    embeddings = np.eye(12, 8, dtype=np.float32) + np.eye(12, 8, k=-8, dtype=np.float32)
    logits = tf.Variable(cosine)
    values = {}
    for mode in ("exact", margin_gradient):
        layer = MarginLoss(9, 8, *margins, scale=SCALE, margin_gradient=mode)
        with tf.GradientTape() as tape:
            values[mode] = layer(labels, embeddings, logits)
            mean = tf.reduce_mean(values[mode])
        gradient = tape.gradient(mean, logits).numpy()
    np.testing.assert_array_equal(values[margin_gradient].numpy(), values["exact"].numpy())
    expected = closed_form_gradient(cosine, labels, margins, SCALE, margin_gradient)
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-6)
    rows = np.arange(12)
    differs = not np.allclose(expected[rows, labels], closed_form_gradient(
        cosine, labels, margins, SCALE, "exact")[rows, labels], rtol=1e-3)
    assert differs == (margin_gradient == "straight_through" and preset != "cosface")  # CosFace's slope is 1


def test_an_unknown_margin_gradient_is_refused():
    with pytest.raises(ValueError, match="margin_gradient='none'"):
        MarginLoss(5, 8, margin_gradient="none")
