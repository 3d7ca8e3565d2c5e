"""`center_update` and `CenterLoss` against plain NumPy loops over the spec's formulas."""
import numpy as np
import pytest
import tensorflow as tf

from losses import CenterLoss, center_update


def reference_center_update(centers, embeddings, labels, alpha):
    """c_j ← c_j − α Σ_{i: y_i = j} (c_j − e_i) / (1 + n_j), one class at a time, in float64."""
    centers = np.asarray(centers, dtype=np.float64)
    embeddings = np.asarray(embeddings, dtype=np.float64)
    updated = centers.copy()
    for class_id in range(len(centers)):
        rows = [i for i, label in enumerate(labels) if label == class_id]
        if not rows:
            continue
        total = np.zeros(centers.shape[1])
        for i in rows:
            total += centers[class_id] - embeddings[i]
        updated[class_id] = centers[class_id] - alpha * total / (1 + len(rows))
    return updated


def random_batch(seed, num_classes=7, dim=5, batch=12):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(num_classes, dim)).astype(np.float32)
    embeddings = rng.normal(size=(batch, dim)).astype(np.float32)
    labels = rng.integers(0, num_classes - 2, size=batch)  # the last two classes never appear
    labels[:4] = [1, 1, 1, 3]  # guaranteed repeats
    return centers, embeddings, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.5, 0.1, 1.0])
def test_center_update_matches_reference(seed, alpha):
    centers, embeddings, labels = random_batch(seed)
    actual = center_update(centers, embeddings, labels, alpha).numpy()
    expected = reference_center_update(centers, embeddings, labels, alpha)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    absent = sorted(set(range(len(centers))) - set(labels.tolist()))
    assert absent and np.array_equal(actual[absent], centers[absent])


def test_center_update_single_class_repeated_by_hand():
    centers = np.float32([[1.0, 1.0], [5.0, 5.0]])
    embeddings = np.float32([[0.0, 2.0], [2.0, 0.0], [4.0, 4.0]])
    labels = np.array([0, 0, 0])
    # n = 3: c ← c − 0.5 · ((1,-1) + (-1,1) + (-3,-3)) / 4 = (1,1) + (0.375, 0.375).
    actual = center_update(centers, embeddings, labels, 0.5).numpy()
    np.testing.assert_allclose(actual, [[1.375, 1.375], [5.0, 5.0]], atol=1e-6)


def test_center_update_under_xla():
    centers, embeddings, labels = random_batch(4)
    compiled = tf.function(lambda c, e, y: center_update(c, e, y, 0.5), jit_compile=True)
    actual = compiled(tf.constant(centers), tf.constant(embeddings), tf.constant(labels, tf.int32)).numpy()
    np.testing.assert_allclose(actual, reference_center_update(centers, embeddings, labels, 0.5), rtol=1e-5, atol=1e-6)


def test_center_loss_value_is_mean_square_distance_per_sample():
    centers, embeddings, labels = random_batch(5)
    layer = CenterLoss(num_classes=7, embedding_size=5)
    layer.centers.assign(centers)
    loss = layer(labels, embeddings, None).numpy()
    expected = [np.mean((embeddings[i].astype(np.float64) - centers[label]) ** 2) for i, label in enumerate(labels)]
    assert loss.shape == (12,)
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(layer.centers.numpy(), centers)  # training=False: centres stay put


@pytest.mark.parametrize("jit_compile", [False, True])
def test_training_moves_centres_by_exactly_center_update(jit_compile):
    centers, embeddings, labels = random_batch(6)
    layer = CenterLoss(num_classes=7, embedding_size=5, alpha=0.3)
    layer.centers.assign(centers)
    step = tf.function(lambda y, e: layer(y, e, None, training=True), jit_compile=jit_compile)
    loss = step(tf.constant(labels, tf.int32), tf.constant(embeddings)).numpy()
    # The loss uses the centres before the update.
    expected_loss = [np.mean((embeddings[i].astype(np.float64) - centers[label]) ** 2) for i, label in enumerate(labels)]
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        layer.centers.numpy(), reference_center_update(centers, embeddings, labels, 0.3), rtol=1e-5, atol=1e-6
    )


def test_training_from_zero_centres_moves_only_present_classes():
    layer = CenterLoss(num_classes=4, embedding_size=3)
    embeddings = np.float32([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    layer(np.array([2, 2]), embeddings, None, training=True)
    # n = 2: c_2 ← 0 − 0.5 · ((0 − e_0) + (0 − e_1)) / 3 = (e_0 + e_1) / 6.
    np.testing.assert_allclose(layer.centers.numpy(), [[0, 0, 0], [0, 0, 0], [1 / 3, 1 / 3, 0], [0, 0, 0]], atol=1e-6)


def test_export_import_round_trip(tmp_path):
    source = CenterLoss(num_classes=6, embedding_size=4)
    values = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    source.centers.assign(values)
    path = str(tmp_path / "centers.npy")
    source.export_centers(path)
    saved = np.load(path)
    assert saved.dtype == np.float32 and saved.shape == (6, 4)
    target = CenterLoss(num_classes=6, embedding_size=4)
    target.import_centers(path)
    np.testing.assert_array_equal(target.centers.numpy(), values)


def test_import_with_wrong_shape_names_both_shapes(tmp_path):
    path = str(tmp_path / "other.npy")
    np.save(path, np.zeros((5, 16), np.float32))
    layer = CenterLoss(num_classes=6, embedding_size=16)
    with pytest.raises(ValueError) as caught:
        layer.import_centers(path)
    message = str(caught.value)
    assert "(5, 16)" in message and "(6, 16)" in message and "other.npy" in message
    np.testing.assert_array_equal(layer.centers.numpy(), np.zeros((6, 16)))


def test_import_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        CenterLoss(num_classes=2, embedding_size=2).import_centers(str(tmp_path / "missing.npy"))


def test_config_round_trip_keeps_alpha():
    layer = CenterLoss(num_classes=3, embedding_size=2, alpha=0.25)
    clone = CenterLoss.from_config(layer.get_config())
    assert (clone.num_classes, clone.embedding_size, clone.alpha) == (3, 2, 0.25)
