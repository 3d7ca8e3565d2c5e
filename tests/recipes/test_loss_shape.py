"""A loss that does not return one value per sample is refused when the train step is built, naming it."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import backbones
from losses import FaceLoss, SoftmaxLoss
from recipes.face_model import FaceTrainingModel
from registry import HEADS


class PerClassLoss(FaceLoss):
    """Returns (B, C): forgot to reduce over the classes."""

    def call(self, labels, embeddings, logits, training=False):
        return ops.square(logits)


class ScalarLoss(FaceLoss):
    """Returns (): already averaged over the batch."""

    def call(self, labels, embeddings, logits, training=False):
        return ops.mean(ops.square(logits))


class HalfBatchLoss(FaceLoss):
    """Returns (B/2,): one value per pair of samples."""

    def call(self, labels, embeddings, logits, training=False):
        values = ops.mean(ops.square(embeddings), axis=-1)
        return values[0::2] + values[1::2]


def _model(face_loss, classes=3):
    keras.utils.set_random_seed(0)
    embedder = backbones.build_embedding_model("tiny", embedding_size=8, image_size=16)
    model = FaceTrainingModel(embedder, HEADS.build("norm_dense", num_classes=classes), face_loss)
    model.build((None, 16, 16, 3))
    model.compile(optimizer="sgd")
    return model


def _batches(batch=4, classes=3):
    images = np.random.default_rng(0).uniform(0, 255, (2 * batch, 16, 16, 3)).astype(np.float32)
    labels = np.arange(2 * batch, dtype=np.int32) % classes
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch, drop_remainder=True)


@pytest.mark.parametrize("loss_class, shape", [(PerClassLoss, "(4, 3)"), (ScalarLoss, "()"), (HalfBatchLoss, "(2,)")])
def test_a_loss_of_the_wrong_shape_is_refused_naming_it_its_class_and_the_shape(loss_class, shape):
    model = _model(loss_class(3, 8, name="my_plugin_loss"))
    before = [weight.numpy().copy() for weight in model.trainable_weights]
    with pytest.raises(ValueError) as error:
        model.fit(_batches(), epochs=1, verbose=0)
    message = str(error.value)
    assert "'my_plugin_loss'" in message and f"{__name__}.{loss_class.__qualname__}" in message
    assert f"returned shape {shape} for a batch of 4 samples" in message and "shape (4,)" in message
    assert all(np.array_equal(old, new.numpy()) for old, new in zip(before, model.trainable_weights))


def test_a_batch_size_unknown_while_tracing_is_checked_in_the_graph():
    images = np.random.default_rng(0).uniform(0, 255, (6, 16, 16, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    refusal = r"halves.{1,3} \(.*HalfBatchLoss\) returned shape other than \(B,\)"
    with pytest.raises(tf.errors.InvalidArgumentError, match=refusal):
        _model(HalfBatchLoss(3, 8, name="halves")).fit(images, labels, batch_size=4, epochs=1, verbose=0)
    history = _model(SoftmaxLoss(3, 8)).fit(images, labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
