"""A user's loss file, loaded as a plugin, is buildable by name and trains."""
import hashlib
import textwrap

import keras
import numpy as np

import backbones
import losses
from recipes.face_model import FaceTrainingModel
from recipes.plugins import load_plugin
from registry import HEADS, LOSSES

PLUGIN_SOURCE = textwrap.dedent('''
    """A user's loss: softmax cross-entropy plus `weight` times the mean squared embedding."""
    from keras import ops

    import losses
    from registry import LOSSES


    @LOSSES.register("{name}")
    class ShrinkingSoftmax(losses.FaceLoss):
        def __init__(self, num_classes, embedding_size, weight=0.1, **kwargs):
            super().__init__(num_classes, embedding_size, **kwargs)
            self.weight = float(weight)

        def call(self, labels, embeddings, logits, training=False):
            cross_entropy = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            return cross_entropy + self.weight * ops.mean(ops.square(embeddings), axis=-1)
''')


def write_plugin(tmp_path):
    """A plugin file with a loss name unique to this test (registrations cannot be undone)."""
    suffix = hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]
    name = f"my_loss_{suffix}"
    path = tmp_path / f"my_losses_{suffix}.py"
    path.write_text(PLUGIN_SOURCE.format(name=name))
    return name, str(path)


def test_plugin_loss_builds_by_name_and_matches_its_formula(tmp_path):
    name, path = write_plugin(tmp_path)
    assert name not in LOSSES
    load_plugin(path)
    assert name in LOSSES
    loss = losses.build_loss(name, num_classes=4, embedding_size=3, weight=0.5)
    assert isinstance(loss, losses.FaceLoss) and loss.weight == 0.5

    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(5, 3)).astype(np.float32)
    logits = rng.normal(size=(5, 4)).astype(np.float32)
    labels = np.array([0, 3, 1, 1, 2])
    values = loss(labels, embeddings, logits).numpy()
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -log_softmax[np.arange(5), labels] + 0.5 * np.mean(embeddings**2, axis=1)
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6)


def test_plugin_loss_trains_one_step(tmp_path):
    name, path = write_plugin(tmp_path)
    load_plugin(path)
    keras.utils.set_random_seed(0)
    embedder = backbones.build_embedding_model("tiny", embedding_size=16, image_size=32)
    model = FaceTrainingModel(embedder, HEADS.build("norm_dense", num_classes=5), losses.build_loss(name, 5, 16))
    model.compile(optimizer="adamax")
    images = np.random.default_rng(1).uniform(0, 255, size=(4, 32, 32, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 1])
    model.build((None, 32, 32, 3))
    before = [weight.numpy().copy() for weight in model.trainable_weights]
    history = model.fit(images, labels, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(old, new.numpy()) for old, new in zip(before, model.trainable_weights))
