"""Every registered backbone, head and loss: trains one step, saves, loads with no custom objects.

Parametrised over the registries, so a new plugin gets these tests for free. Backbones from
keras.applications run at 32x32 (their minimum) and eagerly, and losses and heads train on a
one-convolution tiny backbone at 16x16, to keep the suite fast on 2 cores.
"""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest

import backbones
import losses
from recipes.face_model import FaceTrainingModel
from registry import BACKBONES, HEADS, LOSSES

EMBEDDING_SIZE = 16
NUM_CLASSES = 5
SMALL_IMAGE = 32
# The loss and head tests train on one 3x3 convolution ("tiny" with one width) at 16x16: the backbone is not their
# point, and tracing (or XLA-compiling) the whole tiny backbone doubled their time.
PART_IMAGE = 16
ONE_CONVOLUTION = {"widths": (8,)}


def build_training_model(backbone="tiny", head="norm_dense", loss="softmax", image_size=SMALL_IMAGE, seed=0,
                         backbone_args=None):
    keras.utils.set_random_seed(seed)
    embedder = backbones.build_embedding_model(backbone, embedding_size=EMBEDDING_SIZE, image_size=image_size,
                                               backbone_args=backbone_args)
    face_loss = losses.build_loss(loss, num_classes=NUM_CLASSES, embedding_size=EMBEDDING_SIZE)
    model = FaceTrainingModel(embedder, HEADS.build(head, num_classes=NUM_CLASSES), face_loss)
    model.build((None, image_size, image_size, 3))
    return model


def random_images(count, image_size=SMALL_IMAGE, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(count, image_size, image_size, 3)).astype(np.float32)


def center_layers(model):
    return [layer for layer in model.face_loss._flatten_layers(include_self=True) if isinstance(layer, losses.CenterLoss)]


def train_one_step(model, images, labels, batch_size, jit_compile=False, run_eagerly=False):
    model.compile(optimizer="adamax", jit_compile=jit_compile, run_eagerly=run_eagerly)
    history = model.fit(images, labels, epochs=1, batch_size=batch_size, verbose=0)
    loss = history.history["loss"][0]
    assert np.isfinite(loss), f"loss after one step is {loss}"
    return loss


def assert_same_model(model, loaded, images):
    """Same weights (in order, by value) and same embedding and logits in inference mode."""
    assert type(loaded) is type(model)
    assert len(loaded.weights) == len(model.weights)
    for original, restored in zip(model.weights, loaded.weights):
        assert original.shape == restored.shape, (original.path, restored.path)
        np.testing.assert_array_equal(original.numpy(), restored.numpy(), err_msg=original.path)
    expected = model(images, training=False)
    actual = loaded(images, training=False)
    for key in ("embedding", "logits"):
        np.testing.assert_array_equal(np.asarray(actual[key]), np.asarray(expected[key]), err_msg=key)
    for original, restored in zip(center_layers(model), center_layers(loaded), strict=True):
        np.testing.assert_array_equal(restored.centers.numpy(), original.centers.numpy())


def inner_backbone(embedder):
    nested = [layer for layer in embedder.layers if isinstance(layer, keras.Model)]
    assert len(nested) == 1, [layer.name for layer in embedder.layers]
    return nested[0]


@pytest.mark.slow
@pytest.mark.parametrize("loss_name", LOSSES.names())
def test_loss_trains_saves_and_loads(loss_name, tmp_path):
    model = build_training_model(loss=loss_name, image_size=PART_IMAGE, backbone_args=ONE_CONVOLUTION)
    images, labels = random_images(4, PART_IMAGE), np.array([0, 1, 2, 1])
    train_one_step(model, images, labels, batch_size=4)
    for layer in center_layers(model):
        assert np.any(layer.centers.numpy() != 0), "centres did not move during the training step"

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert_same_model(model, loaded, images)
    assert type(loaded.face_loss) is type(model.face_loss)
    as_json = lambda layer: json.loads(json.dumps(layer.get_config()))  # noqa: E731  (tuples → lists)
    assert as_json(loaded.face_loss) == as_json(model.face_loss)
    outputs = model(images, training=False)
    np.testing.assert_array_equal(
        loaded.face_loss(labels, outputs["embedding"], outputs["logits"], training=False).numpy(),
        model.face_loss(labels, outputs["embedding"], outputs["logits"], training=False).numpy())

    # Resuming: the loaded model keeps training with its restored optimizer and centres.
    history = loaded.fit(images, labels, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.slow
@pytest.mark.parametrize("loss_name", LOSSES.names())
def test_loss_trains_under_xla(loss_name):
    model = build_training_model(loss=loss_name, image_size=PART_IMAGE, backbone_args=ONE_CONVOLUTION)
    state_before = [variable.numpy() for variable in model.face_loss.non_trainable_variables]
    train_one_step(model, random_images(4, PART_IMAGE), np.array([0, 1, 2, 1]), batch_size=4, jit_compile=True)
    for layer in center_layers(model):
        assert np.all(np.isfinite(layer.centers.numpy())) and np.any(layer.centers.numpy() != 0)
    for before, variable in zip(state_before, model.face_loss.non_trainable_variables, strict=True):
        assert np.all(np.isfinite(variable.numpy())), variable.path
        assert np.any(variable.numpy() != before), f"{variable.path} did not change in a training step"


@pytest.mark.slow
@pytest.mark.parametrize("loss_name", ["adaface", "curricularface"])
def test_stateful_loss_with_center_factor_trains_saves_and_loads(loss_name, tmp_path):
    """`--center_factor` wraps a loss in WithCenterLoss: both parts' state trains, saves and loads."""
    keras.utils.set_random_seed(0)
    embedder = backbones.build_embedding_model("tiny", embedding_size=EMBEDDING_SIZE, image_size=PART_IMAGE,
                                               backbone_args=ONE_CONVOLUTION)
    base = losses.build_loss(loss_name, num_classes=NUM_CLASSES, embedding_size=EMBEDDING_SIZE)
    face_loss = losses.WithCenterLoss(NUM_CLASSES, EMBEDDING_SIZE, base, factor=0.5)
    model = FaceTrainingModel(embedder, HEADS.build("norm_dense", num_classes=NUM_CLASSES), face_loss)
    model.build((None, PART_IMAGE, PART_IMAGE, 3))
    images, labels = random_images(4, PART_IMAGE), np.array([0, 1, 2, 1])
    train_one_step(model, images, labels, batch_size=4)
    assert np.any(model.face_loss.center.centers.numpy() != 0)
    assert len(base.non_trainable_variables) > 0
    assert all(np.any(variable.numpy() != fresh.numpy()) for variable, fresh in zip(
        base.non_trainable_variables, losses.build_loss(loss_name, NUM_CLASSES, EMBEDDING_SIZE).non_trainable_variables))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert_same_model(model, loaded, images)
    assert type(loaded.face_loss.base) is type(base)


@pytest.mark.slow
@pytest.mark.parametrize("head_name", HEADS.names())
def test_head_trains_saves_and_loads(head_name, tmp_path):
    model = build_training_model(head=head_name, loss="center_softmax", image_size=PART_IMAGE,
                                 backbone_args=ONE_CONVOLUTION)
    images = random_images(4, PART_IMAGE)
    train_one_step(model, images, np.array([4, 3, 2, 3]), batch_size=4)
    outputs = model(images, training=False)
    assert outputs["logits"].shape == (4, NUM_CLASSES)
    path = str(tmp_path / "model.keras")
    model.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(path)
    unbuildable = [str(warning.message) for warning in caught if "cannot be built" in str(warning.message)]
    assert not unbuildable, unbuildable
    assert_same_model(model, loaded, images)


# Deeper IResNets come from the same builder as iresnet18, and resnet101v2 from keras.applications' ResNetV2
# like resnet50v2, which train below; to keep the suite fast they get a forward pass here (and the IResNets
# their exact weight counts in tests/backbones).
FORWARD_ONLY_BACKBONES = ("iresnet34", "iresnet50", "iresnet100", "iresnet200", "resnet101v2")
TRAINED_BACKBONES = [name for name in BACKBONES.names() if name not in FORWARD_ONLY_BACKBONES]


@pytest.mark.slow
@pytest.mark.parametrize("backbone_name", TRAINED_BACKBONES)
def test_backbone_trains_saves_and_loads(backbone_name, tmp_path):
    model = build_training_model(backbone=backbone_name, loss="center_softmax")
    assert model.embedder.output.shape == (None, EMBEDDING_SIZE)
    images = random_images(2)
    train_one_step(model, images, np.array([0, 3]), batch_size=2, run_eagerly=backbone_name != "tiny")
    assert np.any(center_layers(model)[0].centers.numpy() != 0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert_same_model(model, loaded, images)
    assert len(loaded.trainable_variables) == len(model.trainable_variables)  # iresnet's γ ≡ 1 stays frozen


@pytest.mark.slow
@pytest.mark.parametrize("backbone_name", FORWARD_ONLY_BACKBONES)
def test_forward_only_backbone_embeds(backbone_name):
    assert backbone_name in BACKBONES, f"{backbone_name} is no longer registered: update FORWARD_ONLY_BACKBONES"
    embedder = backbones.build_embedding_model(backbone_name, embedding_size=EMBEDDING_SIZE, image_size=SMALL_IMAGE)
    # Training mode (batch statistics): untrained, the deep nets' activations overflow float32 with the
    # initial running statistics (mean 0, variance 1) under arcface_torch's N(0, 0.1) convolutions.
    embeddings = np.asarray(embedder(random_images(2), training=True))
    assert embeddings.shape == (2, EMBEDDING_SIZE) and np.all(np.isfinite(embeddings))
    assert not np.allclose(embeddings[0], embeddings[1])


def test_resnet50v2_at_face_resolution_gives_4x4x2048():
    features = BACKBONES.build("resnet50v2", input_shape=(112, 112, 3))
    assert tuple(features.output.shape) == (None, 4, 4, 2048)


@pytest.mark.slow
def test_embedder_alone_loads_without_any_project_code(tmp_path):
    model = build_training_model(backbone="tiny")
    images = random_images(3)
    np.save(tmp_path / "images.npy", images)
    model.embedder.save(str(tmp_path / "embedding.keras"))
    script = textwrap.dedent("""
        import sys
        import keras
        import numpy as np
        embedder = keras.saving.load_model("embedding.keras")
        project = [name for name in ("losses", "heads", "backbones", "recipes", "registry") if name in sys.modules]
        assert not project, project
        np.save("embeddings.npy", np.asarray(embedder(np.load("images.npy"), training=False)))
    """)
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    # -I: isolated mode, so neither the repository nor PYTHONPATH is importable.
    result = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = np.asarray(model.embedder(images, training=False))
    np.testing.assert_allclose(np.load(tmp_path / "embeddings.npy"), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backbone_name", BACKBONES.names())
def test_missing_backbone_weights_file_says_nothing_is_downloaded(backbone_name, tmp_path):
    missing = str(tmp_path / "missing.weights.h5")
    with pytest.raises(FileNotFoundError) as caught:
        backbones.build_embedding_model(backbone_name, embedding_size=EMBEDDING_SIZE, image_size=SMALL_IMAGE,
                                        backbone_weights=missing)
    message = str(caught.value)
    assert "missing.weights.h5" in message and "nothing is downloaded" in message.lower()


@pytest.mark.slow
@pytest.mark.parametrize("backbone_name", ["tiny", "mobilenetv2"])
def test_backbone_weights_from_local_file(backbone_name, tmp_path):
    keras.utils.set_random_seed(3)
    source = BACKBONES.build(backbone_name, input_shape=(SMALL_IMAGE, SMALL_IMAGE, 3))
    path = str(tmp_path / "x.weights.h5")
    source.save_weights(path)

    keras.utils.set_random_seed(4)
    fresh = inner_backbone(backbones.build_embedding_model(backbone_name, EMBEDDING_SIZE, image_size=SMALL_IMAGE))
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(source.weights, fresh.weights))

    keras.utils.set_random_seed(4)
    loaded = inner_backbone(
        backbones.build_embedding_model(backbone_name, EMBEDDING_SIZE, image_size=SMALL_IMAGE, backbone_weights=path)
    )
    assert len(loaded.weights) == len(source.weights)
    for original, restored in zip(source.weights, loaded.weights):
        np.testing.assert_array_equal(restored.numpy(), original.numpy())
