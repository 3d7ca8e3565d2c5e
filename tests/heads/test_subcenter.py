"""The subcenter head against NumPy: column layout j·k … j·k + k − 1, max over sub-centres; built by the registry."""
import keras
import numpy as np
import pytest

from heads import NormDense, SubCenterNormDense
from registry import HEADS


def reference_logits(inputs, kernel, num_classes, k):
    """logits[b, j] = max over i < k of x_b · w[:, j·k + i] / ‖w[:, j·k + i]‖, class by class in float64."""
    inputs, kernel = np.asarray(inputs, np.float64), np.asarray(kernel, np.float64)
    logits = np.empty((len(inputs), num_classes))
    for j in range(num_classes):
        columns = kernel[:, j * k:(j + 1) * k]
        logits[:, j] = (inputs @ (columns / np.linalg.norm(columns, axis=0))).max(axis=1)
    return logits


@pytest.mark.parametrize("k", [1, 3, 4])
def test_logits_are_the_nearest_subcentre_per_class(k):
    rng = np.random.default_rng(k)
    head = HEADS.build("subcenter", num_classes=6, k=k)
    inputs = (rng.normal(size=(5, 8)) * 4).astype(np.float32)
    head.build(inputs.shape)
    kernel = rng.normal(size=(8, 6 * k)).astype(np.float32)
    head.kernel.assign(kernel)
    assert head.kernel.shape == (8, 6 * k) and len(head.weights) == 1
    actual = head(inputs).numpy()
    assert actual.dtype == np.float32 and actual.shape == (5, 6)
    np.testing.assert_allclose(actual, reference_logits(inputs, kernel, 6, k), rtol=1e-5, atol=1e-5)


def test_default_k_is_three_and_k_one_is_norm_dense():
    assert SubCenterNormDense(num_classes=4).k == 3
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(3, 8)).astype(np.float32)
    single, plain = SubCenterNormDense(4, k=1), NormDense(4)
    single.build(inputs.shape), plain.build(inputs.shape)
    plain.kernel.assign(single.kernel.numpy())
    np.testing.assert_array_equal(single(inputs).numpy(), plain(inputs).numpy())


def test_config_round_trips_and_bad_k_is_refused():
    head = SubCenterNormDense(num_classes=7, k=2, name="head")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(head))
    assert (type(restored), restored.num_classes, restored.k) == (SubCenterNormDense, 7, 2)
    with pytest.raises(ValueError, match="k=0"):
        SubCenterNormDense(num_classes=3, k=0)
