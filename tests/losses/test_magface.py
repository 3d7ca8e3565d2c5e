"""MagFace against a NumPy port of IrvingMeng/MagFace `models/magface.py` (MagLinear easy_margin, MagLoss)."""
import numpy as np
import pytest
import tensorflow as tf

from loss_inputs import cross_entropy, loss_inputs, one_hot, seen_cosine
from losses import MagFaceLoss
from losses.magface import magface_logits

def reference_loss(cosine, norms, labels, l_a=10.0, u_a=110.0, l_margin=0.45, u_margin=0.8, lambda_g=35.0,
                   scale=64.0):
    """(per-sample loss, logits): `MagLinear.forward` (easy_margin=True), `MagLoss`, trainer's sum; float64."""
    x_norm = np.clip(np.asarray(norms, np.float64), l_a, u_a)[:, None]
    ada_margin = (u_margin - l_margin) / (u_a - l_a) * (x_norm - l_a) + l_margin
    cos_m, sin_m = np.cos(ada_margin), np.sin(ada_margin)
    cos_theta = np.clip(np.asarray(cosine, np.float64), -1, 1)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    cos_theta_m = cos_theta * cos_m - sin_theta * sin_m
    cos_theta_m = np.where(cos_theta > 0, cos_theta_m, cos_theta)
    hot = one_hot(labels, cosine.shape[1])
    output = hot * scale * cos_theta_m + (1.0 - hot) * scale * cos_theta
    loss_g = 1 / (u_a**2) * x_norm[:, 0] + 1 / x_norm[:, 0]
    return cross_entropy(output, labels) + lambda_g * loss_g, output


@pytest.mark.parametrize("seed", range(4))
def test_loss_matches_official_formula(seed):
    labels, _, _, cosine, norms = loss_inputs(seed, norms=np.linspace(1.0, 200.0, 12))
    assert norms.min() < 10 and norms.max() > 110
    _, expected_logits = reference_loss(cosine, norms, labels)
    actual_logits = magface_logits(cosine, norms, labels, 10.0, 110.0, 0.45, 0.8, 64.0).numpy()
    np.testing.assert_allclose(actual_logits / 64, expected_logits / 64, atol=2e-6)


@pytest.mark.parametrize("seed", range(4))
def test_layer_loss_matches_official_formula(seed):
    labels, embeddings, logits, _, norms = loss_inputs(seed, norms=np.linspace(1.0, 200.0, 12), edge_targets=False)
    expected, _ = reference_loss(seen_cosine(embeddings, logits), norms, labels)
    loss = MagFaceLoss(7, 8)(labels, embeddings, logits, training=True).numpy()
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-4)


def test_other_settings_and_norms_far_outside_the_clip():
    settings = {"l_a": 5.0, "u_a": 50.0, "l_margin": 0.3, "u_margin": 0.6, "lambda_g": 10.0, "scale": 30.0}
    labels, embeddings, logits, _, norms = loss_inputs(7, edge_targets=False)  # norms 1e-4 … 300
    cosine = seen_cosine(embeddings, logits)
    layer = MagFaceLoss(7, 8, lower_norm=5.0, upper_norm=50.0, lower_margin=0.3, upper_margin=0.6, lambda_g=10.0,
                        scale=30.0)
    expected, _ = reference_loss(cosine, norms, labels, *settings.values())
    np.testing.assert_allclose(layer(labels, embeddings, logits).numpy(), expected, rtol=1e-5, atol=1e-4)


def test_margin_is_linear_in_the_clipped_norm():
    # cos θ_y = 0.6 at norms 10 (l_a), 60 and 110 (u_a), and at 5 / 500 (clipped to l_a / u_a).
    norms = np.float32([10.0, 60.0, 110.0, 5.0, 500.0])
    cosine = np.tile(np.float32([[0.6, -0.3]]), (5, 1))
    logits = magface_logits(cosine, norms, np.zeros(5, np.int64), 10.0, 110.0, 0.45, 0.8, 1.0).numpy()
    margins = [0.45, 0.625, 0.8, 0.45, 0.8]
    np.testing.assert_allclose(logits[:, 0], np.cos(np.arccos(0.6) + np.array(margins)), atol=1e-6)
    np.testing.assert_allclose(logits[:, 1], -0.3, atol=1e-7)


def test_easy_margin_leaves_non_positive_target_cosines_alone():
    cosine = np.float32([[0.0, 0.2], [-0.5, 0.2], [-1.0, 0.2], [1e-6, 0.2]])
    logits = magface_logits(cosine, np.full(4, 60.0, np.float32), np.zeros(4, np.int64), 10.0, 110.0, 0.45, 0.8,
                            1.0).numpy()
    np.testing.assert_allclose(logits[:3, 0], [0.0, -0.5, -1.0], atol=1e-7)
    assert logits[3, 0] < 0  # cos(π/2 + 0.625): the margin applies just above zero


def test_regulariser_pulls_the_norm_inside_the_clip_only():
    layer = MagFaceLoss(7, 8)
    labels, embeddings, logits, _, _ = loss_inputs(2, norms=np.array([5.0, 40.0, 200.0] * 4))
    embeddings = tf.Variable(embeddings)
    logits = tf.Variable(logits)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(layer(labels, embeddings, logits))
    gradient = tape.gradient(total, [embeddings, logits])
    assert all(np.all(np.isfinite(value.numpy())) for value in gradient)
