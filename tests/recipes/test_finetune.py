"""Fine-tuning: frozen parts stay bit-identical, the freeze_epochs switch resumes on both sides, class-mean heads."""
import re
import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import recipes  # noqa: F401  (registers the classes a saved training model needs)
from data.pipeline import decode_face
from recipes.finetune import Freezer, frozen_at
from recipes.head_init import initialize_from_class_means
from recipes.recipe import Recipe, RecipeError
from recipes.resolve import resolve_recipe, resolve_resume
from recipes.train import build_training_model, train
from storage.checkpoints import list_checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = dict(backbone="tiny", embedding_size=16, image_size=32, dropout=0.0, optimizer="sgd", lr=0.1)


def batchnorm_weights(embedder):
    """{variable path: value} of every BatchNormalization variable (γ, β, moving mean and variance)."""
    return {variable.path: variable.numpy().copy() for layer in embedder._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization) for variable in layer.weights}


def weights_by_path(model):
    return {variable.path: variable.numpy().copy() for variable in model.weights}


def fit_a_few_steps(model, steps=3, classes=4):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8 * steps, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, classes, 8 * steps).astype("int32")
    model.fit(images, labels, batch_size=8, epochs=1, shuffle=False, verbose=0)


@pytest.mark.parametrize("mode", ["none", "batchnorm", "backbone"])
def test_frozen_variables_stay_bit_identical_over_steps_and_the_rest_trains(mode):
    keras.utils.set_random_seed(0)
    model = build_training_model(Recipe(**SMALL, optimizer_args={"weight_decay": 0.05}), num_classes=4)
    if mode != "none":
        Freezer(model.embedder, mode).set(True)
    before_bn, before, head = batchnorm_weights(model.embedder), weights_by_path(model), model.head.kernel.numpy()
    fit_a_few_steps(model)
    after_bn, after = batchnorm_weights(model.embedder), weights_by_path(model)
    bn_unchanged = [np.array_equal(before_bn[path], after_bn[path]) for path in before_bn]
    embedder_paths = [variable.path for variable in model.embedder.weights]
    others_unchanged = [np.array_equal(before[path], after[path]) for path in embedder_paths
                        if path not in before_bn and path.endswith("kernel")]
    assert len(bn_unchanged) == 4 * 5  # tiny: 4 convolution BNs and the embedding BN
    assert all(bn_unchanged) == (mode != "none") and not any(bn_unchanged) == (mode == "none")
    assert all(others_unchanged) == (mode == "backbone") and not any(others_unchanged) == (mode != "backbone")
    assert not np.array_equal(head, model.head.kernel.numpy())


def test_unfreezing_restores_every_flag_including_a_variable_held_on_purpose():
    model = build_training_model(Recipe(**SMALL), num_classes=4)
    model.embedder.get_layer("embedding_bn").gamma.trainable = False  # as a γ fixed at 1 (backbones.torch_like)
    flags = [(variable.path, variable.trainable) for variable in model.embedder.weights]
    trainable = len(model.trainable_variables)
    for mode, frozen_count in (("batchnorm", 2 * 4 + 1), ("backbone", len(model.embedder.trainable_variables))):
        freezer = Freezer(model.embedder, mode)
        assert freezer.set(True) and not freezer.set(True)
        assert len(model.trainable_variables) == trainable - frozen_count
        assert freezer.set(False)
        assert [(variable.path, variable.trainable) for variable in model.embedder.weights] == flags
        assert len(model.trainable_variables) == trainable


def test_frozen_at_counts_epochs_from_zero():
    assert [frozen_at("batchnorm", 2, epoch) for epoch in range(4)] == [True, True, False, False]
    assert all(frozen_at("backbone", 0, epoch) for epoch in range(4))
    assert not any(frozen_at("none", 0, epoch) for epoch in range(4))


def checkpoint_models(run_dir):
    return {epoch: keras.saving.load_model(os.path.join(path, "model.keras")) for epoch, path in list_checkpoints(run_dir)}


def pretrained(tmp_path):
    """A tiny 32×32, 16-d embedding model saved as `embedding.keras` (BatchNorm statistics moved off 0 and 1)."""
    import backbones

    keras.utils.set_random_seed(1)
    model = backbones.build_embedding_model("tiny", 16, dropout=0.0, image_size=32)
    model.set_weights([weight + np.float32(0.1) for weight in model.get_weights()])
    path = str(tmp_path / "embedding.keras")
    model.save(path)
    return path


def test_freeze_epochs_switch_and_resumes_on_both_sides_match_an_uninterrupted_run(tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, **SMALL, "lr": 0.05, "freeze": "batchnorm", "freeze_epochs": 2, "epochs": 3,
                 "deterministic": True, "optimizer_args": {"momentum": 0.9}, "backbone_weights": pretrained(tmp_path)}
    reference = train(resolve_recipe("softmax", overrides))
    models = checkpoint_models(reference)
    bn = {epoch: batchnorm_weights(model.embedder) for epoch, model in models.items()}
    conv = {epoch: model.embedder.get_layer("tiny").get_layer("tiny_conv0").kernel.numpy() for epoch, model in models.items()}
    assert all(np.array_equal(bn[1][path], bn[2][path]) for path in bn[1])  # epochs 1 and 2 frozen
    assert not any(np.array_equal(bn[2][path], bn[3][path]) for path in bn[2])  # epoch 3 trains them
    assert not np.array_equal(conv[1], conv[2])

    first = train(resolve_recipe("softmax", {**overrides, "epochs": 2, "runs_dir": str(tmp_path / "interrupted")}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recipe, run_dir = resolve_resume("softmax", first, {"epochs": 3})  # from a frozen checkpoint, starts unfrozen
        assert train(recipe, run_dir) == first
        frozen = build_training_model(recipe, 8)  # a checkpoint written after the switch loads into a frozen model
        Freezer(frozen.embedder, "batchnorm").set(True)
        frozen.load_weights(os.path.join(list_checkpoints(reference)[-1][1], "model.keras"))
    assert not [warning for warning in caught if "Skipping variable loading" in str(warning.message)]
    resumed = checkpoint_models(first)[3]
    assert len(resumed.weights) == len(models[3].weights)
    for expected, actual in zip(models[3].weights, resumed.weights):
        np.testing.assert_array_equal(actual.numpy(), expected.numpy(), err_msg=expected.path)
    for expected, actual in zip(models[3].optimizer.variables, frozen.optimizer.variables):
        np.testing.assert_array_equal(actual.numpy(), expected.numpy(), err_msg=expected.path)
    final = keras.saving.load_model(os.path.join(first, "model.keras"))  # saved after on_train_end: unfrozen
    assert all(layer.trainable for layer in final.embedder._flatten_layers())


def training_images(folder):
    """(images uint8 (N, S, S, 3) as the pipeline decodes them, labels (N,)) of a `tiny_faces` training folder."""
    from data.folders import scan_identity_folder

    scanned = scan_identity_folder(folder, cache=False, progress=False)
    images = [decode_face(tf.io.read_file(str(path)), 32).numpy() for path in scanned.paths]
    return np.stack(images), np.asarray(scanned.labels)


def expected_class_vectors(embeddings, labels, num_classes, k):
    """Column j·k + i: the normalised mean of the unit embeddings of class j's images number i, i + k, ..."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    columns = []
    for class_id in range(num_classes):
        members = unit[labels == class_id]
        for sub in range(k):
            mean = members[sub::k].mean(axis=0)
            columns.append(mean / np.linalg.norm(mean))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("head, head_args, k", [("norm_dense", {}, 1), ("subcenter", {"k": 3}, 3)])
def test_class_means_set_each_class_vector_to_the_normalised_mean_embedding(tiny_faces, head, head_args, k):
    model = build_training_model(Recipe(**SMALL, head=head, head_args=head_args), num_classes=8)
    from data.folders import scan_identity_folder

    initialize_from_class_means(model, scan_identity_folder(tiny_faces.train_dir, progress=False), 32, 24)
    images, labels = training_images(tiny_faces.train_dir)
    embeddings = np.asarray(model.embedder(images.astype("float32"), training=False), np.float64)
    expected = expected_class_vectors(embeddings, labels, 8, k)
    np.testing.assert_allclose(model.head.kernel.numpy(), expected, atol=2e-6)
    assert k == 1 or not np.allclose(expected[:, 0], expected[:, 1])  # sub-centres start apart


PARTIAL_FC = r"""
import sys
import numpy as np
from recipes.distribution import make_strategy
from recipes.recipe import Recipe
from recipes.train import build_training_model
from recipes.head_init import initialize_from_class_means
from data.folders import scan_identity_folder

strategy = make_strategy("mirrored", cpu_replicas=2)
with strategy.scope():
    model = build_training_model(Recipe(backbone="tiny", embedding_size=16, image_size=32, head="partial_fc"), 7)
folder = scan_identity_folder(sys.argv[1], max_classes=7, progress=False)
initialize_from_class_means(model, folder, 32, 16)
head = model.head
np.savez(sys.argv[2], *[copy.numpy() for copy in head._copies(head.kernel)], starts=head.starts, counts=head.counts,
         **{f"w{index}": weight for index, weight in enumerate(model.embedder.get_weights())})
"""


def test_class_means_give_each_partial_fc_shard_its_classes_on_two_replicas(tiny_faces, tmp_path):
    out = str(tmp_path / "shards.npz")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", PARTIAL_FC, tiny_faces.train_dir, out], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(out)
    embedder = build_training_model(Recipe(**SMALL), 7).embedder
    embedder.set_weights([saved[f"w{index}"] for index in range(len(embedder.weights))])
    images, labels = training_images(tiny_faces.train_dir)
    kept = labels < 7
    embeddings = np.asarray(embedder(images[kept].astype("float32"), training=False), np.float64)
    expected = expected_class_vectors(embeddings, labels[kept], 7, 1).T  # (C, d): a shard's rows
    assert list(saved["counts"]) == [4, 3]
    for replica, (start, count) in enumerate(zip(saved["starts"], saved["counts"])):
        np.testing.assert_allclose(saved[f"arr_{replica}"][:count], expected[start:start + count], atol=2e-6)


@pytest.mark.parametrize("overrides, message", [
    ({"freeze": "bn"}, "--freeze='bn'"),
    ({"freeze_epochs": 2}, "nothing is frozen"),
    ({"freeze": "batchnorm", "freeze_epochs": -1}, ">= 0"),
    ({"head_init": "means"}, "Did you mean 'class_means'"),
    ({"lr_mult.neck": 0.1}, "--lr_mult.neck"),
    ({"lr_mult.backbone": 0}, "must be positive"),
    ({"lr_mult.backbone": "fast"}, "--lr_mult.backbone='fast'"),
    ({"freeze": "backbone", "head": "partial_fc"}, "--freeze=backbone with --head=partial_fc"),
])
def test_fine_tuning_fields_are_checked(overrides, message):
    with pytest.raises(RecipeError, match=re.escape(message)):
        Recipe().replace(**overrides)


def test_freezing_a_random_network_is_refused(tiny_overrides):
    from recipes.train import RunRefused

    with pytest.raises(RunRefused, match="no --backbone_weights"):
        train(resolve_recipe("softmax", {**tiny_overrides, "freeze": "batchnorm"}))


def test_lr_mult_values_become_numbers():
    assert Recipe().replace(**{"lr_mult.backbone": "0.1", "lr_mult.head": 2}).lr_mult == {"backbone": 0.1, "head": 2.0}
