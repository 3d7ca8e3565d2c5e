"""AdaFace against a NumPy port of mk-minchul/AdaFace `head.py` (`AdaFace.forward`), state included."""
import math

import numpy as np
import pytest
import tensorflow as tf

from loss_inputs import cross_entropy, loss_inputs, one_hot, seen_cosine
from losses import AdaFaceLoss
from losses.adaface import adaface_logits


def reference_update(norms, batch_mean, batch_std, t_alpha):
    """The official EMA of the clipped norms' mean and unbiased std (torch.std), float64."""
    safe_norms = np.clip(np.asarray(norms, np.float64), 0.001, 100)
    mean, std = safe_norms.mean(), safe_norms.std(ddof=1)
    return mean * t_alpha + (1 - t_alpha) * batch_mean, std * t_alpha + (1 - t_alpha) * batch_std


def reference_logits(cosine, norms, labels, batch_mean, batch_std, m=0.4, h=0.333, s=64.0):
    """`AdaFace.forward` after the statistics update, line by line in float64."""
    eps = 1e-3
    cosine = np.clip(np.asarray(cosine, np.float64), -1 + eps, 1 - eps)
    safe_norms = np.clip(np.asarray(norms, np.float64), 0.001, 100)[:, None]
    margin_scaler = np.clip((safe_norms - batch_mean) / (batch_std + eps) * h, -1, 1)
    m_arc = one_hot(labels, cosine.shape[1]) * (m * margin_scaler * -1)
    theta_m = np.clip(np.arccos(cosine) + m_arc, eps, math.pi - eps)
    cosine = np.cos(theta_m) - one_hot(labels, cosine.shape[1]) * (m + m * margin_scaler)
    return cosine * s


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("batch_mean, batch_std", [(20.0, 100.0), (5.0, 2.0), (0.5, 0.01)])
def test_logits_match_official_formula(seed, batch_mean, batch_std):
    labels, _, _, cosine, norms = loss_inputs(seed)
    actual = adaface_logits(cosine, norms, labels, batch_mean, batch_std,
                            0.4, 0.333, 64.0).numpy()
    expected = reference_logits(cosine, norms, labels, batch_mean, batch_std)
    assert np.all(np.isfinite(actual))
    np.testing.assert_allclose(actual / 64, expected / 64, atol=2e-5)


def test_margin_scaler_saturates_outside_the_norm_clip():
    # μ = 50, σ = 1: every norm below 47 gives ẑ = −1, above 53 gives +1; 1e-4 and 300 are clipped first.
    labels = np.zeros(2, dtype=np.int64)
    cosine = np.float32([[0.5, 0.1], [0.5, 0.1]])
    actual = adaface_logits(cosine, np.float32([1e-4, 300.0]), labels, 50.0, 1.0, 0.4, 0.333, 1.0).numpy()
    low = math.cos(math.acos(0.5) + 0.4) - 0.0  # ẑ = −1: θ + m, and m + m·ẑ = 0
    high = math.cos(math.acos(0.5) - 0.4) - 0.8  # ẑ = +1: θ − m, and m + m·ẑ = 2m
    np.testing.assert_allclose(actual[:, 0], [low, high], atol=1e-6)
    np.testing.assert_allclose(actual[:, 1], [0.1, 0.1], atol=1e-7)


def test_state_after_two_training_calls_and_inference_leaves_it():
    layer = AdaFaceLoss(num_classes=7, embedding_size=8)
    assert (layer.batch_mean.numpy(), layer.batch_std.numpy(), layer.t_alpha) == (20.0, 100.0, 0.01)
    mean, std = 20.0, 100.0
    for seed in (10, 11):
        labels, embeddings, logits, _, norms = loss_inputs(seed)
        cosine = seen_cosine(embeddings, logits)
        loss = layer(labels, embeddings, logits, training=True).numpy()
        mean, std = reference_update(norms, mean, std, 0.01)
        np.testing.assert_allclose([layer.batch_mean.numpy(), layer.batch_std.numpy()], [mean, std], rtol=1e-5)
        expected = cross_entropy(reference_logits(cosine, norms, labels, mean, std), labels)
        np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-4)

    labels, embeddings, logits, _, norms = loss_inputs(12)
    cosine = seen_cosine(embeddings, logits)
    loss = layer(labels, embeddings, logits, training=False).numpy()
    np.testing.assert_allclose([layer.batch_mean.numpy(), layer.batch_std.numpy()], [mean, std], rtol=1e-5)
    np.testing.assert_allclose(loss, cross_entropy(reference_logits(cosine, norms, labels, mean, std), labels),
                               rtol=1e-5, atol=1e-4)


def test_t_alpha_one_uses_the_batch_statistics_alone():
    layer = AdaFaceLoss(num_classes=7, embedding_size=8, t_alpha=1.0, margin=0.5, h=0.2, scale=32.0)
    labels, embeddings, logits, _, norms = loss_inputs(5)
    cosine = seen_cosine(embeddings, logits)
    loss = layer(labels, embeddings, logits, training=True).numpy()
    mean, std = reference_update(norms, 20.0, 100.0, 1.0)
    np.testing.assert_allclose(layer.batch_std.numpy(), np.clip(norms, 0.001, 100).std(ddof=1), rtol=1e-5)
    expected = cross_entropy(reference_logits(cosine, norms, labels, mean, std, m=0.5, h=0.2, s=32.0), labels)
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-4)


def test_gradient_is_finite_at_cos_plus_minus_one_and_tiny_norms():
    layer = AdaFaceLoss(num_classes=7, embedding_size=8)
    labels, embeddings, logits, _, _ = loss_inputs(3)
    embeddings, logits = tf.Variable(embeddings), tf.Variable(logits)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(layer(labels, embeddings, logits, training=True))
    gradients = tape.gradient(total, [embeddings, logits])
    assert all(np.all(np.isfinite(gradient.numpy())) for gradient in gradients)


def test_bad_t_alpha_is_refused():
    with pytest.raises(ValueError, match="t_alpha"):
        AdaFaceLoss(5, 8, t_alpha=0.0)
