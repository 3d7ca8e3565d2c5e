"""ElasticFace against a NumPy port of fdbtrs/ElasticFace `utils/losses.py`; σ = 0 is ArcFace / CosFace."""
import numpy as np
import pytest
import tensorflow as tf

from loss_inputs import cross_entropy, loss_inputs, seen_cosine
from losses import ElasticFaceLoss, MarginLoss
from losses.elasticface import elastic_logits, plus_order


def reference_logits(cosine, labels, margin, variant, s=64.0, plus=False):
    """`ElasticArcFace.forward` / `ElasticCosFace.forward` in float64, given the drawn margins (B,)."""
    cos_theta = np.clip(np.asarray(cosine, np.float64), -1, 1)
    margin = np.asarray(margin, np.float64)[:, None]
    if plus:
        distmat = cos_theta[np.arange(len(labels)), labels]
        idicate_cosie = np.argsort(-distmat, kind="stable")
        margin = np.sort(margin, axis=0)[idicate_cosie]
    m_hot = np.zeros_like(cos_theta)
    m_hot[np.arange(len(labels)), labels] = margin[:, 0]
    if variant == "arc":
        return np.cos(np.arccos(cos_theta) + m_hot) * s
    return (cos_theta - m_hot) * s


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("variant", ["arc", "cos"])
@pytest.mark.parametrize("plus", [False, True])
def test_logits_match_official_formula(seed, variant, plus):
    labels, _, _, cosine, _ = loss_inputs(seed)
    margins = np.random.default_rng(seed).normal(0.5, 0.05, size=len(labels)).astype(np.float32)
    if plus:
        target = cosine[np.arange(len(labels)), labels]
        margins_used = plus_order(margins, target).numpy()
    else:
        margins_used = margins
    actual = elastic_logits(cosine, labels, margins_used, variant, 64.0).numpy()
    expected = reference_logits(cosine, labels, margins, variant, plus=plus)
    np.testing.assert_allclose(actual / 64, expected / 64, atol=2e-6)


def test_plus_order_is_the_official_indexing():
    # sorted margins [0.1, 0.2, 0.3, 0.4]; cosines descending order = [2, 0, 3, 1] → sample i gets sorted[order[i]].
    margins = np.float32([0.3, 0.1, 0.4, 0.2])
    cosine = np.float32([0.5, -0.2, 0.9, 0.1])
    np.testing.assert_allclose(plus_order(margins, cosine).numpy(), [0.3, 0.1, 0.4, 0.2])
    cosine = np.float32([0.9, 0.5, 0.1, -0.2])
    np.testing.assert_allclose(plus_order(margins, cosine).numpy(), [0.1, 0.2, 0.3, 0.4])


def test_training_draws_margins_with_the_requested_mean_and_std():
    layer = ElasticFaceLoss(2, 8, variant="cos", scale=1.0, seed=3)
    assert (layer.margin, layer.sigma) == (0.35, 0.05)
    labels, embeddings, logits, _, _ = loss_inputs(1, batch=4000, classes=2, edge_targets=False, norms=np.ones(4000))
    cosine = seen_cosine(embeddings, logits)
    rows = np.arange(len(labels))
    # Two classes, s = 1: loss = log(1 + exp(cos θ_other − cos θ_y + m)), so m = log(e^loss − 1) − cos θ_other + cos θ_y.
    first = layer(labels, embeddings, logits, training=True).numpy().astype(np.float64)
    margins = np.log(np.expm1(first)) - cosine[rows, 1 - labels] + cosine[rows, labels]
    assert abs(margins.mean() - 0.35) < 0.005 and abs(margins.std() - 0.05) < 0.005
    second = layer(labels, embeddings, logits, training=True).numpy()
    assert np.abs(second - first).max() > 1e-3  # a fresh draw each step


def test_inference_uses_the_mean_margin():
    labels, embeddings, logits, _, _ = loss_inputs(2, edge_targets=False)
    layer = ElasticFaceLoss(7, 8, variant="arc", plus=True)
    assert layer.sigma == 0.0175
    expected = cross_entropy(reference_logits(seen_cosine(embeddings, logits), labels, np.full(12, 0.5), "arc"), labels)
    np.testing.assert_allclose(layer(labels, embeddings, logits, training=False).numpy(), expected, rtol=1e-5,
                               atol=1e-4)


@pytest.mark.parametrize("plus", [False, True])
@pytest.mark.parametrize("variant, preset", [("arc", "arcface"), ("cos", "cosface")])
def test_sigma_zero_equals_arcface_and_cosface(variant, preset, plus):
    # ArcFace's guard (θ + 0.5 > π keeps cos θ) is not in ElasticFace: keep targets above cos(π − 0.5).
    labels, embeddings, logits, _, _ = loss_inputs(6, batch=32, norms=np.full(32, 3.0), edge_targets=False)
    cosine = seen_cosine(embeddings, logits)
    rows = np.arange(len(labels))
    keep = cosine[rows, labels] > -0.85 if variant == "arc" else rows >= 0
    elastic = ElasticFaceLoss(7, 8, variant=variant, sigma=0.0, plus=plus)
    margin = MarginLoss(7, 8, preset=preset)
    for training in (True, False):
        np.testing.assert_allclose(elastic(labels, embeddings, logits, training=training).numpy()[keep],
                                   margin(labels, embeddings, logits, training=training).numpy()[keep],
                                   rtol=1e-5, atol=1e-5)


def test_arc_variant_has_no_guard_near_pi():
    cosine = np.float32([[-0.95, 0.0]])
    actual = elastic_logits(cosine, np.zeros(1, np.int64), np.float32([0.5]), "arc", 1.0).numpy()[0, 0]
    assert actual == pytest.approx(np.cos(np.arccos(-0.95) + 0.5), abs=1e-6)


def test_gradient_is_finite_at_cos_plus_minus_one():
    labels, _, _, cosine, _ = loss_inputs(8)
    cosine = tf.Variable(cosine)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(elastic_logits(cosine, labels, tf.fill([12], 0.5), "arc", 64.0))
    assert np.all(np.isfinite(tape.gradient(total, cosine).numpy()))


def test_bad_variant_and_sigma_are_refused():
    with pytest.raises(ValueError, match="variant"):
        ElasticFaceLoss(5, 8, variant="sphere")
    with pytest.raises(ValueError, match="sigma"):
        ElasticFaceLoss(5, 8, sigma=-0.1)


def test_straight_through_passes_the_target_gradient_unchanged_with_the_same_logits():
    """ElasticArcFace's target cos(θ_y + m_i): "exact" slope sin(θ + m_i) / sin θ, "straight_through" 1."""
    rng = np.random.default_rng(2)
    cosine = tf.Variable(rng.uniform(-0.8, 0.8, size=(6, 5)).astype(np.float32))
    labels = rng.integers(0, 5, size=6)
    margins = rng.normal(0.5, 0.05, size=6).astype(np.float32)
    results = {}
    for mode in ("exact", "straight_through"):
        with tf.GradientTape() as tape:
            logits = elastic_logits(cosine, labels, margins, "arc", 64.0, margin_gradient=mode)
            total = tf.reduce_sum(logits)
        results[mode] = logits.numpy(), tape.gradient(total, cosine).numpy()
    np.testing.assert_array_equal(results["exact"][0], results["straight_through"][0])
    rows = np.arange(6)
    theta = np.arccos(cosine.numpy()[rows, labels].astype(np.float64))
    np.testing.assert_allclose(results["exact"][1][rows, labels] / 64.0, np.sin(theta + margins) / np.sin(theta),
                               rtol=1e-4)
    np.testing.assert_allclose(results["straight_through"][1], np.full((6, 5), 64.0), rtol=1e-6)
