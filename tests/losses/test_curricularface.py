"""CurricularFace against a NumPy port of HuangYG123/CurricularFace `head/metrics.py`, state included."""
import math

import numpy as np
import pytest
import tensorflow as tf

from loss_inputs import cross_entropy, loss_inputs, seen_cosine
from losses import CurricularFaceLoss
from losses.curricularface import curricular_logits


def reference_forward(cosine, labels, t, m=0.5, s=64.0, update=True):
    """(logits, new t): `CurricularFace.forward` line by line in float64 (t updated before use)."""
    cos_m, sin_m = math.cos(m), math.sin(m)
    threshold, mm = math.cos(math.pi - m), math.sin(math.pi - m) * m
    cos_theta = np.clip(np.asarray(cosine, np.float64), -1, 1)
    rows = np.arange(len(labels))
    target_logit = cos_theta[rows, labels].reshape(-1, 1)
    sin_theta = np.sqrt(1.0 - target_logit**2)
    cos_theta_m = target_logit * cos_m - sin_theta * sin_m
    mask = cos_theta > cos_theta_m
    final_target_logit = np.where(target_logit > threshold, cos_theta_m, target_logit - mm)
    hard_example = cos_theta[mask]
    if update:
        t = target_logit.mean() * 0.01 + (1 - 0.01) * t
    cos_theta[mask] = hard_example * (t + hard_example)
    cos_theta[rows, labels] = final_target_logit[:, 0]
    return cos_theta * s, t


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("t", [0.0, 0.3, 0.9])
def test_logits_match_official_formula(seed, t):
    labels, _, _, cosine, _ = loss_inputs(seed)
    expected, _ = reference_forward(cosine, labels, t, update=False)
    actual = curricular_logits(cosine, labels, t, 0.5, 64.0).numpy()
    assert np.all(np.isfinite(actual))
    np.testing.assert_allclose(actual / 64, expected / 64, atol=2e-6)


def test_target_below_the_threshold_gets_the_linear_fallback():
    # cos(π − 0.5) ≈ −0.8776: below it the target is cos θ − m·sin(π − m), not cos(θ + m).
    cosine = np.float32([[-0.9, 0.0], [-0.85, 0.0], [-1.0, 0.0]])
    actual = curricular_logits(cosine, np.zeros(3, np.int64), 0.0, 0.5, 1.0).numpy()[:, 0]
    fallback = 0.5 * math.sin(math.pi - 0.5)
    np.testing.assert_allclose(actual, [-0.9 - fallback, math.cos(math.acos(-0.85) + 0.5), -1.0 - fallback],
                               atol=1e-6)


def test_hard_negatives_are_reweighted_by_t():
    # target cos 0.8: cos(θ + 0.5) = 0.8 cos 0.5 − 0.6 sin 0.5 ≈ 0.4144; negatives 0.5 and 0.42 are hard, 0.41 is not.
    cosine = np.float32([[0.8, 0.5, 0.42, 0.41]])
    actual = curricular_logits(cosine, np.zeros(1, np.int64), 0.2, 0.5, 1.0).numpy()[0]
    np.testing.assert_allclose(actual[1:], [0.5 * 0.7, 0.42 * 0.62, 0.41], atol=1e-6)


def test_state_after_two_training_calls_and_inference_leaves_it():
    layer = CurricularFaceLoss(num_classes=7, embedding_size=8)
    assert layer.t.numpy() == 0.0
    t = 0.0
    for seed in (20, 21):
        labels, embeddings, logits, _, _ = loss_inputs(seed, edge_targets=False)
        loss = layer(labels, embeddings, logits, training=True).numpy()
        expected_logits, t = reference_forward(seen_cosine(embeddings, logits), labels, t)
        np.testing.assert_allclose(layer.t.numpy(), t, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(loss, cross_entropy(expected_logits, labels), rtol=1e-5, atol=1e-4)
    assert t != 0.0

    labels, embeddings, logits, _, _ = loss_inputs(22, edge_targets=False)
    loss = layer(labels, embeddings, logits, training=False).numpy()
    np.testing.assert_allclose(layer.t.numpy(), t, rtol=1e-5, atol=1e-7)
    expected_logits, _ = reference_forward(seen_cosine(embeddings, logits), labels, t, update=False)
    np.testing.assert_allclose(loss, cross_entropy(expected_logits, labels), rtol=1e-5, atol=1e-4)


def test_gradient_is_finite_at_cos_plus_minus_one_and_t_gets_none():
    labels, _, _, cosine, _ = loss_inputs(4)
    cosine = tf.Variable(cosine)
    t = tf.Variable(0.4)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(curricular_logits(cosine, labels, t, 0.5, 64.0))
    gradient_cosine, gradient_t = tape.gradient(total, [cosine, t])
    assert np.all(np.isfinite(gradient_cosine.numpy())) and gradient_t is None
