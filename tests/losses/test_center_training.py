"""Acceptance: training with center_softmax pulls embeddings towards their class centres."""
import keras
import numpy as np
import pytest

import backbones
import losses
from recipes.face_model import FaceTrainingModel
from registry import HEADS

NUM_CLASSES, PER_CLASS, IMAGE_SIZE, EMBEDDING_SIZE = 6, 16, 32, 32


def structured_images(seed):
    """Each class a different coarse 4x4 colour pattern, plus per-pixel noise (σ = 40 grey levels)."""
    rng = np.random.default_rng(seed)
    bases = rng.uniform(0, 255, size=(NUM_CLASSES, 4, 4, 3))
    bases = np.repeat(np.repeat(bases, IMAGE_SIZE // 4, axis=1), IMAGE_SIZE // 4, axis=2)
    labels = np.repeat(np.arange(NUM_CLASSES), PER_CLASS)
    noise = rng.normal(0, 40, size=(len(labels), IMAGE_SIZE, IMAGE_SIZE, 3))
    return np.clip(bases[labels] + noise, 0, 255).astype(np.float32), labels


def mean_distance_to_class_centres(embedder, images, labels):
    """mean_i ||e_i − c_{y_i}||², with c_j the mean embedding of class j.

    Embeddings are taken in training mode over the whole set (dropout is 0 here), so the final
    BatchNormalization scales them to unit variance per dimension: the distance cannot shrink
    just because all embeddings shrink, and does not depend on barely-updated moving statistics.
    """
    embeddings = np.asarray(embedder(images, training=True), dtype=np.float64)
    centres = np.stack([embeddings[labels == label].mean(axis=0) for label in range(NUM_CLASSES)])
    return float(np.mean(np.sum((embeddings - centres[labels]) ** 2, axis=1)))


def train(loss_name, images, labels, seed=0):
    """(distance before, distance after) 5 epochs of `loss_name` from a seeded initialisation."""
    keras.utils.set_random_seed(seed)
    embedder = backbones.build_embedding_model("tiny", EMBEDDING_SIZE, dropout=0.0, image_size=IMAGE_SIZE)
    face_loss = losses.build_loss(loss_name, NUM_CLASSES, EMBEDDING_SIZE)
    model = FaceTrainingModel(embedder, HEADS.build("norm_dense", num_classes=NUM_CLASSES), face_loss)
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    before = mean_distance_to_class_centres(model.embedder, images, labels)
    model.compile(optimizer="adamax")
    history = model.fit(images, labels, epochs=5, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    return before, mean_distance_to_class_centres(model.embedder, images, labels)


@pytest.mark.slow
def test_center_softmax_lowers_distance_to_class_centres():
    images, labels = structured_images(seed=0)
    before, after = train("center_softmax", images, labels)
    assert after < 0.25 * before, f"mean ||e - c_y||^2 went from {before:.3f} to {after:.3f}"
    # The centre term does the pulling: softmax alone, same start, ends clearly less compact.
    softmax_before, softmax_after = train("softmax", images, labels)
    assert softmax_before == before
    assert after < 0.75 * softmax_after, f"center_softmax {after:.3f} vs softmax {softmax_after:.3f}"
