"""tf.distribute: mirrored over 2 logical CPUs gives the single-device center update; mixed precision trains."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import recipes  # noqa: F401
from recipes.commands.cli import main
from recipes.distribution import make_strategy
from recipes.recipe import Recipe
from recipes.train import build_training_model


class CenterRecord(keras.callbacks.Callback):
    """The centres of every replica after every step."""

    def __init__(self):
        super().__init__()
        self.per_step = []

    def on_train_batch_end(self, batch, logs=None):
        variable = self.model.face_loss.center.centers
        copies = getattr(variable.value, "values", None) or (variable.value,)
        self.per_step.append([np.asarray(copy.numpy()) for copy in copies])


@pytest.mark.slow
def test_mirrored_center_update_equals_single_device_on_the_global_batch(op_determinism):
    strategy = make_strategy("mirrored", cpu_replicas=2)
    # A small SGD step: the summed replica gradients differ from the single-device gradient in the
    # last float bits, and larger steps let that noise (not the center update) dominate by step 4.
    recipe = Recipe(name="t", loss="center_softmax", backbone="tiny", embedding_size=16, dropout=0.0,
                    sync_batchnorm=True, optimizer="sgd", lr=1e-4)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (64, 112, 112, 3)).astype("float32")
    labels = rng.integers(0, 6, 64).astype("int32")
    keras.utils.set_random_seed(0)  # the same weights every time (the tolerance below is for these)
    with strategy.scope():
        mirrored = build_training_model(recipe, 6)
    single = build_training_model(recipe, 6)
    single.set_weights(mirrored.get_weights())
    records = {}
    for name, model in (("mirrored", mirrored), ("single", single)):
        records[name] = CenterRecord()
        batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
        model.fit(batches, epochs=1, callbacks=[records[name]], verbose=0, shuffle=False)
    assert strategy.num_replicas_in_sync == 2
    assert [len(step) for step in records["mirrored"].per_step] == [2, 2, 2, 2]
    assert [float(np.abs(step[0] - step[-1]).max()) for step in records["mirrored"].per_step] == [0.0] * 4
    assert all(float(np.abs(step[0]).max()) > 0.1 for step in records["single"].per_step)
    single_difference = [float(np.abs(a[0] - b[0]).max())
                         for a, b in zip(records["mirrored"].per_step, records["single"].per_step)]
    assert max(single_difference) < 1e-5, single_difference


@pytest.mark.slow
def test_cli_run_on_two_cpu_replicas_records_the_global_batch(tiny_faces, tmp_path, capsys):
    main(["run", "center_softmax", "--backbone=tiny", "--embedding_size=16", "--batch_size=8", "--epochs=1",
          f"--data={tiny_faces.train_dir}", f"--eval_bins=[{tiny_faces.bin_path}]", f"--runs_dir={tmp_path}",
          "--cpu_replicas=2", "--sync_batchnorm=true", "--verbose=0"])
    assert "global batch 16 = 8 per replica x 2" in capsys.readouterr().out
    (run_dir,) = [os.path.join(tmp_path, name) for name in os.listdir(tmp_path)]
    with open(os.path.join(run_dir, "recipe.json")) as file:
        stored = json.load(file)
    assert (stored["strategy_resolved"], stored["replicas"], stored["global_batch_size"]) == (
        "MirroredStrategy", 2, 16)
    assert stored["steps_per_epoch_resolved"] == 64 // 16


def test_mixed_precision_trains_with_float32_heads_and_losses(tiny_overrides):
    from recipes.resolve import resolve_recipe

    recipe = resolve_recipe("center_arcface", {**tiny_overrides, "mixed_precision": "true"})
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_training_model(recipe, 8)
        images = np.random.default_rng(0).uniform(0, 255, (16, 112, 112, 3)).astype("float32")
        labels = np.arange(16) % 8
        history = model.fit(images, labels, batch_size=16, epochs=1, verbose=0)
        outputs = model(images[:2])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(history.history["loss"][0])
    assert model.embedder.get_layer("embedding").compute_dtype == "bfloat16"
    assert outputs["logits"].dtype == "float32" and outputs["embedding"].dtype == "float32"
    assert model.face_loss.center.centers.dtype == "float32"


@pytest.mark.parametrize("value", ["ring", "tpu"])
def test_unknown_strategy_is_refused_before_training(value):
    from recipes.resolve import resolve_recipe
    from recipes.recipe import RecipeError

    with pytest.raises(RecipeError, match="--strategy"):
        resolve_recipe("softmax", {"strategy": value})
