"""partial_fc: class-sharded classifier on 2 logical CPU replicas vs norm_dense on one device."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import backbones
import losses
from storage.checkpoints import list_checkpoints
from storage.history import read_history
from storage.model_files import load_model_file
from heads.partial_fc import PartialFC
from heads.sharded_softmax import sharded_face_loss
from losses import FaceLoss, SoftmaxLoss, WithCenterLoss
from recipes.commands.cli import main
from recipes.distribution import make_strategy
from recipes.face_model import FaceTrainingModel
from recipes.optimizers import FACE_CLASSES, build_optimizer
from recipes.recipe import Recipe, RecipeError
from recipes.resolve import resolve_recipe
from recipes.schedules import build_schedule
from recipes.train import build_training_model, train
from registry import HEADS, LOSSES

class StepLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def exactness(loss_name, loss_args, field=False, clip=None, loss_scale=False):
    """partial_fc on 2 replicas and norm_dense on one device, from the same weights, trained on the same 48 images
    in batches of 16: their losses, weights and classifier change. `field`: arcface_torch's optimisation."""
    strategy = make_strategy("mirrored", cpu_replicas=2)
    classes, steps = 7, 3  # 4 + 3 classes: replica 1 holds a padding row
    recipe = Recipe(name="t", loss=loss_name, loss_args=loss_args, backbone="tiny", embedding_size=16, dropout=0.0,
                    sync_batchnorm=True, optimizer="sgd", lr=0.002, epochs=1)
    if field:  # arcface_torch's optimisation: SGD, coupled decay of everything, clipped backbone, warm-up
        recipe = recipe.replace(lr=0.05, epochs=2, lr_schedule="polynomial", clip_grad_norm=clip,
                                schedule_args={"warmup_epochs": 1.0, "power": 2.0},
                                optimizer_args={"momentum": 0.9, "weight_decay": 5e-3, "weight_decay_mode": "coupled",
                                                "weight_decay_exclude": []})
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (48, 112, 112, 3)).astype("float32")
    labels = rng.integers(0, classes, 48).astype("int32")
    keras.utils.set_random_seed(0)
    with strategy.scope():
        sharded = build_training_model(recipe.replace(head="partial_fc"), classes, steps)
        if loss_scale:  # the scale doubles after every step: each step's gradients are unscaled by that step's scale
            rate, _ = build_schedule(recipe.lr_schedule, recipe.lr, recipe.epochs, steps, **recipe.schedule_args)
            inner = build_optimizer("sgd", rate, clip_grad_norm=recipe.clip_grad_norm, **recipe.optimizer_args)
            sharded.compile(optimizer=keras.optimizers.LossScaleOptimizer(inner, initial_scale=2.0**8,
                                                                          dynamic_growth_steps=1))
            sharded.optimizer.build(sharded.trainable_variables)
    keras.utils.set_random_seed(0)
    single = build_training_model(recipe.replace(head="norm_dense"), classes, steps)

    def state(model):
        kernel = model.head.logical(model.head.kernel) if model is sharded else model.head.kernel.numpy()
        return [kernel] + [np.asarray(w) for w in model.embedder.get_weights()]

    def difference(a, b):
        return max(float(np.abs(x - y).max()) for x, y in zip(a, b))

    backbone_norm = None
    if field:  # the backbone's gradient norm on the first batch, to see that the clip acts
        saved = single.get_weights()
        with tf.GradientTape() as tape:
            loss = single.compute_loss(images[:16], labels[:16], single(images[:16], training=True))
        backbone_norm = float(tf.linalg.global_norm(tape.gradient(loss, single.embedder.trainable_variables)))
        single.set_weights(saved)  # as before the call (BatchNorm's moving statistics)
    initial = difference(state(sharded), state(single))
    before = state(single)
    records, epoch_losses = {}, {}
    for name, model in (("sharded", sharded), ("single", single)):
        records[name] = StepLosses()
        epoch_losses[name] = model.fit(tf.data.Dataset.from_tensor_slices((images, labels)).batch(16),
                                       epochs=recipe.epochs, verbose=0, shuffle=False,
                                       callbacks=[records[name]]).history["loss"]
    copies = sharded.head._copies(sharded.head.kernel)
    return {
        "initial_difference": initial,
        "shard_rows": [int(copy.shape[0]) for copy in copies],
        "padding_row": float(np.abs(copies[1].numpy()[3]).max()),
        "sharded_losses": records["sharded"].losses, "single_losses": records["single"].losses,
        "sharded_epochs": epoch_losses["sharded"], "single_epochs": epoch_losses["single"],
        "weight_difference": difference(state(sharded), state(single)),
        "kernel_change": float(np.abs(state(single)[0] - before[0]).max()),
        "backbone_gradient_norm": backbone_norm,
    }


@pytest.mark.parametrize("loss_name, loss_args", [  # stateless MagFace: its value across shards is tested below
    ("softmax", {}), ("arcface", {"preset": "arcface"}),
    ("adaface", {"t_alpha": 0.5}),  # running norm statistics of the global batch
    ("curricularface", {}),  # hard negatives re-weighted on every shard from the all-reduced target logit
    ("elasticface", {"seed": 7}),  # per-sample margins drawn on each replica from the same generator state
])
@pytest.mark.slow
def test_two_replicas_at_rate_1_equal_norm_dense_on_one_device(loss_name, loss_args, op_determinism):
    report = exactness(loss_name, loss_args)
    assert report["initial_difference"] == 0.0, report
    assert report["shard_rows"] == [4, 4] and report["padding_row"] == 0.0
    assert len(report["sharded_losses"]) == 3
    np.testing.assert_allclose(report["sharded_losses"], report["single_losses"], rtol=2e-5)
    assert report["weight_difference"] < 2e-5, report
    assert report["kernel_change"] > 20 * report["weight_difference"], report  # the steps moved the classifier


@pytest.mark.slow
@pytest.mark.parametrize("loss_scale", [False, True])
def test_two_replicas_equal_norm_dense_on_one_device_with_warm_up_decay_and_clipping(loss_scale, op_determinism):
    """SGD with momentum, coupled weight decay of every variable, the backbone clipped on its summed (and unscaled)
    gradients, a polynomial warm-up then decay: head and backbone apply the same rate at every update. With
    `loss_scale` the partial_fc run scales its loss (the scale doubles every step), the norm_dense run does not."""
    report = exactness("arcface", {"preset": "arcface"}, field=True, clip=1.0, loss_scale=loss_scale)
    assert report["initial_difference"] == 0.0
    assert report["backbone_gradient_norm"] > 2 * 1.0, report  # the clip acts
    assert len(report["sharded_losses"]) == 6 and len(report["sharded_epochs"]) == 2
    np.testing.assert_allclose(report["sharded_epochs"], report["single_epochs"], rtol=2e-3)
    np.testing.assert_allclose(report["sharded_losses"], report["single_losses"], rtol=2e-5)
    assert report["weight_difference"] < 1e-3 * report["kernel_change"], report  # rounding, amplified by the clip


def sampling_turns():
    """Two steps of a sampled partial_fc head (rate 0.25, 40 classes) on 2 replicas: per replica, the kept class ids,
    the labels and the absolute row sums of the kernel gradient."""
    strategy = make_strategy("mirrored", cpu_replicas=2)
    classes, rate = 40, 0.25  # 20 classes per replica, budget int(0.25 * 20) = 5
    with strategy.scope():
        head = PartialFC(classes, sample_rate=rate, seed=3)
        head.build((None, 8))
        head.attach_optimizer(keras.optimizers.SGD(0.1))
    loss = SoftmaxLoss(classes, 8)
    # global labels: replica 0's classes 0..19 get 3 positives (2, 11, 17), replica 1's 20..39 get 7
    # (more than its budget of 5)
    local = [np.array([2, 2, 11, 17, 20, 23], np.int32), np.array([25, 28, 31, 33, 36, 2], np.int32)]
    embeddings = np.random.default_rng(0).normal(size=(2, 6, 8)).astype(np.float32)
    values = strategy.experimental_distribute_values_from_function(
        lambda context: (tf.constant(embeddings[context.replica_id_in_sync_group]),
                         tf.constant(local[context.replica_id_in_sync_group])))

    @tf.function
    def step(inputs):
        def replica_step(embedding, label):
            with tf.GradientTape() as tape:
                tape.watch(head.kernel.value)
                sharded = head.sharded_logits(embedding, label, training=True)
                value = tf.reduce_mean(sharded_face_loss(loss, sharded, training=True))
            gradient = tf.convert_to_tensor(tape.gradient(value, head.kernel.value))
            return sharded.class_ids, sharded.labels, gradient
        return strategy.run(replica_step, args=inputs)

    report = []
    for _ in range(2):
        class_ids, all_labels, gradients = (strategy.experimental_local_results(part) for part in step(values))
        report.append([{"kept": ids.numpy().tolist(), "labels": lab.numpy().tolist(),
                        "gradient_rows": np.abs(grad.numpy()).sum(axis=1).tolist()}
                       for ids, lab, grad in zip(class_ids, all_labels, gradients)])
        head._optimizer.value.iterations.assign_add(1)
    return report


def test_sampling_keeps_positives_draws_the_budget_and_leaves_other_classes_without_gradient():
    turns = sampling_turns()
    starts, counts, budget = (0, 20), (20, 20), 5
    for replicas in turns:
        for replica, view in enumerate(replicas):
            start, count = starts[replica], counts[replica]
            labels = set(view["labels"])
            positives = sorted(label for label in labels if start <= label < start + count)
            kept = view["kept"]
            assert kept == sorted(set(kept)) and all(start <= class_id < start + count for class_id in kept)
            assert set(positives) <= set(kept)
            assert len(kept) == max(budget, len(positives))
            gradient_rows = np.array(view["gradient_rows"])
            not_kept = [row for row in range(count) if start + row not in kept]
            assert np.all(gradient_rows[not_kept] == 0.0)
            assert np.all(gradient_rows[[class_id - start for class_id in kept]] > 0.0)
    assert len(turns[0][0]["kept"]) == 5 and len(turns[0][1]["kept"]) == 7  # 3 positives + 2 drawn; 7 positives
    assert turns[0][0]["kept"] != turns[1][0]["kept"]  # a new draw of negatives at the next step


def test_shard_layout_is_arcface_torchs_split():
    from heads.partial_fc import shard_layout

    for classes, replicas in ((7, 2), (10, 3), (360232, 8), (5, 5)):
        starts, counts = shard_layout(classes, replicas)
        for rank in range(replicas):  # partial_fc_v2.py: num_local and class_start
            assert counts[rank] == classes // replicas + int(rank < classes % replicas)
            assert starts[rank] == classes // replicas * rank + min(rank, classes % replicas)
        assert sum(counts) == classes and starts[-1] + counts[-1] == classes


def test_one_device_partial_fc_logits_equal_norm_dense_from_the_same_seed():
    from heads.norm_dense import NormDense

    keras.utils.set_random_seed(5)
    dense = NormDense(11)
    dense.build((None, 6))
    keras.utils.set_random_seed(5)
    partial = PartialFC(11)
    partial.build((None, 6))
    inputs = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    np.testing.assert_array_equal(partial.logical(partial.kernel), dense.kernel.numpy())
    np.testing.assert_allclose(partial(inputs).numpy(), dense(inputs).numpy(), rtol=1e-6, atol=1e-6)


def test_rejects_a_sample_rate_outside_0_1():
    with pytest.raises(ValueError, match="sample_rate=1.5"):
        PartialFC(10, sample_rate=1.5)
    with pytest.raises(ValueError, match="sample_rate=0"):
        PartialFC(10, sample_rate=0)


def train_and_save(replicas, load_from, save_to):
    """Two epochs of 2 steps of a partial_fc softmax model on `replicas` replicas, built (or loaded from `load_from`)
    and saved to `save_to` after the first epoch; the epochs' losses and the head optimizer's state after the first."""
    strategy = make_strategy("mirrored" if replicas > 1 else "default", cpu_replicas=replicas)
    classes = 7
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, (32, 112, 112, 3)).astype("float32")
    labels = rng.integers(0, classes, 32).astype("int32")
    with strategy.scope():
        if load_from:
            model = load_model_file(load_from)
        else:
            keras.utils.set_random_seed(0)
            model = build_training_model(Recipe(name="t", loss="softmax", backbone="tiny", embedding_size=16,
                                                dropout=0.0, sync_batchnorm=True, head="partial_fc"), classes)
            model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
            model.optimizer.build(model.trainable_variables)

    def epoch():
        batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
        return model.fit(batches, epochs=1, verbose=0, shuffle=False).history["loss"][0]

    report = {"first": epoch()}
    head_optimizer = model.head._optimizer.value
    report["iterations"] = int(head_optimizer.iterations.numpy())
    report["momentum_norm"] = float(np.abs(model.head.logical(head_optimizer.variables[1])).sum())
    if save_to:
        model.save(save_to)
    report["second"] = epoch()
    return report


@pytest.mark.slow
@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_resume_on_another_replica_count_continues_the_same_run(tmp_path, first, then, op_determinism):
    path = str(tmp_path / "model.keras")
    started = train_and_save(first, "", path)
    resumed = train_and_save(then, path, "")
    assert started["iterations"] == 2 and started["momentum_norm"] > 0.0
    assert resumed["iterations"] == 4  # the head's optimizer state came back: 2 steps before, 2 after
    np.testing.assert_allclose(resumed["first"], started["second"], rtol=1e-5)


@pytest.mark.slow
def test_cli_trains_on_two_replicas_and_resumes_on_one(tiny_faces, tmp_path, capsys):
    common = ["run", "arcface", "--head=partial_fc", "--backbone=tiny", "--embedding_size=16",
              f"--data={tiny_faces.train_dir}", f"--eval_bins=[{tiny_faces.bin_path}]", f"--runs_dir={tmp_path}",
              "--verbose=0"]
    main([*common, "--epochs=1", "--batch_size=8", "--cpu_replicas=2"])
    assert "8 per replica x 2" in capsys.readouterr().out
    (run_dir,) = [os.path.join(tmp_path, name) for name in os.listdir(tmp_path)]
    main([*common, f"--resume={run_dir}", "--epochs=2", "--batch_size=16", "--cpu_replicas=1"])
    assert "with 1 replica(s)" in capsys.readouterr().out
    history = read_history(os.path.join(run_dir, "history.jsonl"))
    assert [row["epoch"] for row in history] == [0, 1, 2]  # row 0: the evaluation before training
    assert all(np.isfinite(row["loss"]) for row in history[1:])
    assert os.path.isfile(os.path.join(run_dir, "embedding.keras"))


class CallOnlyLoss(FaceLoss):
    """A plugin-style loss that overrides `call` alone: no `margin_logits` to shard."""

    def call(self, labels, embeddings, logits, training=False):
        return ops.mean(ops.square(logits), axis=-1)


class WideTermsLoss(SoftmaxLoss):
    """Splits into parts, but its `sample_terms` are (B, 1): the sum with the cross-entropy is (B, B)."""

    def sample_terms(self, labels, embeddings, training=False):
        return ops.mean(ops.square(embeddings), axis=-1, keepdims=True)


def _one_device_model(face_loss, classes=3):
    keras.utils.set_random_seed(0)
    embedder = backbones.build_embedding_model("tiny", embedding_size=8, image_size=16)
    return FaceTrainingModel(embedder, HEADS.build("partial_fc", num_classes=classes), face_loss)


@pytest.mark.parametrize("make_loss", [lambda: CallOnlyLoss(3, 8, name="my_call_loss"),
                                       lambda: WithCenterLoss(3, 8, CallOnlyLoss(3, 8, name="my_call_loss"))])
def test_a_loss_that_does_not_split_into_parts_is_refused_when_the_model_is_built(make_loss):
    with pytest.raises(RecipeError, match=r"'my_call_loss' \(.*CallOnlyLoss\) cannot run on the class-sharded head"):
        _one_device_model(make_loss())


BUILT_IN_LOSSES = ["softmax", "arcface", "center", "center_softmax", "center_arcface", "adaface", "magface",
                   "curricularface", "elasticface"]


def test_every_built_in_loss_splits_into_parts():
    assert set(BUILT_IN_LOSSES) <= set(LOSSES.names())
    for name in BUILT_IN_LOSSES:
        assert losses.build_loss(name, 5, 8).loss_without_parts() is None, name


def test_the_loss_shape_check_covers_the_sharded_step():
    model = _one_device_model(WideTermsLoss(3, 8, name="wide_terms"))
    model.build((None, 16, 16, 3))
    model.compile(optimizer="sgd")
    images = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    batches = tf.data.Dataset.from_tensor_slices((images, np.arange(8, dtype=np.int32) % 3)).batch(4, drop_remainder=True)
    with pytest.raises(ValueError, match=r"'wide_terms' \(.*WideTermsLoss\) returned shape \(4, 4\) for a batch of 4"):
        model.fit(batches, epochs=1, verbose=0)


@pytest.mark.slow
def test_train_with_sampled_partial_fc_on_two_replicas(tiny_faces, tmp_path):
    run_dir = train(resolve_recipe("arcface", {
        "head": "partial_fc", "head_args.sample_rate": 0.1, "backbone": "tiny", "embedding_size": 16, "batch_size": 8,
        "epochs": 1, "strategy": "mirrored", "cpu_replicas": 2, "data": tiny_faces.train_dir,
        "eval_bins": [tiny_faces.bin_path], "runs_dir": str(tmp_path), "verbose": 0}))
    with open(os.path.join(run_dir, "recipe.json")) as file:
        stored = json.load(file)
    assert stored["head"] == "partial_fc" and stored["head_args"]["sample_rate"] == 0.1
    assert (stored["strategy_resolved"], stored["replicas"], stored["global_batch_size"]) == ("MirroredStrategy", 2, 16)
    history = read_history(os.path.join(run_dir, "history.jsonl"))
    assert [row["epoch"] for row in history] == [0, 1]
    assert np.isfinite(history[1]["loss"]) and history[1]["loss"] > 0.0
    assert [epoch for epoch, _ in list_checkpoints(run_dir)] == [1]
    trained = load_model_file(os.path.join(run_dir, "model.keras"))
    assert isinstance(trained.head, PartialFC) and trained.head.sample_rate == 0.1
    assert trained.head._optimizer.value.iterations.numpy() == stored["steps_per_epoch_resolved"] == 4


def _compiled_one_device_model(optimizer):
    model = _one_device_model(SoftmaxLoss(3, 8))
    model.build((None, 16, 16, 3))
    model.compile(optimizer=optimizer)
    model.optimizer.build(model.trainable_variables)
    return model


def _fit(model, steps=2):
    images = np.random.default_rng(0).uniform(0, 255, (4 * steps, 16, 16, 3)).astype(np.float32)
    batches = tf.data.Dataset.from_tensor_slices((images, np.arange(4 * steps, dtype=np.int32) % 3)).batch(4)
    model.fit(batches, epochs=1, verbose=0, shuffle=False)
    return model.head.kernel.numpy(), [weight.numpy() for weight in model.embedder.trainable_weights]


def test_loss_scaling_unscales_the_head_gradient():
    plain = _fit(_compiled_one_device_model(keras.optimizers.SGD(0.5, momentum=0.9)))
    scaled_model = _compiled_one_device_model(keras.optimizers.LossScaleOptimizer(  # the scale doubles every step
        keras.optimizers.SGD(0.5, momentum=0.9), initial_scale=2.0**10, dynamic_growth_steps=1))
    scaled = _fit(scaled_model)
    assert scaled_model.optimizer.dynamic_scale.numpy() == 2.0**12
    assert np.abs(plain[0] - _compiled_one_device_model("sgd").head.kernel.numpy()).max() > 1e-3  # the head moved
    np.testing.assert_allclose(scaled[0], plain[0], rtol=1e-5, atol=1e-6)
    for ours, reference in zip(scaled[1], plain[1]):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    assert scaled_model.head._optimizer.value.iterations.numpy() == 2


def test_loss_scaling_skips_the_head_step_when_the_scaled_loss_overflows():
    model = _compiled_one_device_model(
        keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.5), initial_scale=2.0**127))
    before = model.head.kernel.numpy()
    _fit(model, steps=1)
    assert model.optimizer.dynamic_scale.numpy() == 2.0**126  # the model's optimizer skipped and halved the scale
    assert model.optimizer.iterations.numpy() == 0
    np.testing.assert_array_equal(model.head.kernel.numpy(), before)
    assert model.head._optimizer.value.iterations.numpy() == 0


class RateRecordingSGD(FACE_CLASSES["sgd"]):
    """The recipes' SGD, keeping in `last_rate` the learning rate its last update applied (partial_fc's head
    optimizer, made from the model optimizer's class, records its own)."""

    def build(self, variables):
        super().build(variables)
        self.last_rate = self.add_variable(shape=(), initializer="zeros", name="last_rate")

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(gradient, variable, learning_rate)
        self.last_rate.assign(ops.cast(learning_rate, "float32"))


class AppliedRates(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        model_optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        self.rates.append((float(model_optimizer.last_rate.numpy()),
                           float(self.model.head._optimizer.value.last_rate.numpy())))


@pytest.mark.parametrize("schedule, options", [
    ("polynomial", {"warmup_epochs": 2, "power": 2.0}), ("cosine", {"warmup_epochs": 1}),
    ("step", {"step_epochs": 1, "factor": 0.5}), ("constant_then_exponential", {"constant_epochs": 1}),
])
@pytest.mark.parametrize("loss_scale", [False, True])
def test_the_head_and_the_backbone_apply_the_rate_of_the_same_update(schedule, options, loss_scale):
    """Per update k (0-based), both optimizers apply schedule(k): 8 updates, 2 per epoch of the schedule."""
    rate, _ = build_schedule(schedule, 0.1, 4, 2, **options)
    optimizer = RateRecordingSGD(rate, momentum=0.9)
    if loss_scale:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0**4)
    model = _compiled_one_device_model(optimizer)
    recorder = AppliedRates()
    images = np.random.default_rng(0).uniform(0, 255, (32, 16, 16, 3)).astype(np.float32)
    model.fit(images, np.arange(32, dtype=np.int32) % 3, batch_size=4, verbose=0, shuffle=False, callbacks=[recorder])
    backbone, head = np.array(recorder.rates).T
    expected = [float(rate(step)) for step in range(8)]
    np.testing.assert_allclose(backbone, expected, rtol=1e-6)
    np.testing.assert_array_equal(head, backbone)
    assert len(set(expected)) > 2  # the rate changes over these updates


def test_glint360k_r50_recipe_shards_its_classifier_at_arcface_torchs_sample_rate():
    from recipes.resolve import resolve_recipe

    resolved = resolve_recipe("glint360k_r50", {}).resolved()
    assert resolved["head"] == "partial_fc" and resolved["head_args"]["sample_rate"] == 1.0
    assert resolved["mixed_precision"] == "true"  # float16 with loss scaling on a GPU, which partial_fc follows


@pytest.mark.slow
def test_every_splittable_loss_gives_its_single_device_value_across_two_shards():
    strategy = make_strategy("mirrored", cpu_replicas=2)
    classes, size = 9, 8
    with strategy.scope():
        head = PartialFC(classes)
        head.build((None, size))
    full = head.logical(head.kernel)
    rng = np.random.default_rng(4)
    embeddings = (rng.normal(size=(12, size)) * 5).astype(np.float32)
    labels = rng.integers(0, classes, 12).astype(np.int32)
    unit = full / np.linalg.norm(full, axis=0, keepdims=True)
    report = {}
    for name in LOSSES.names():
        face_loss = losses.build_loss(name, classes, size)
        if face_loss.loss_without_parts() is not None or not type(face_loss).__module__.startswith("losses."):
            report[name] = None  # cannot be split, or a plugin that another test of this process registered
            continue
        expected = face_loss(labels, embeddings, embeddings @ unit, training=False).numpy()
        values = strategy.experimental_distribute_values_from_function(
            lambda context: (embeddings[6 * context.replica_id_in_sync_group:][:6],
                             labels[6 * context.replica_id_in_sync_group:][:6]))
        per_replica = strategy.run(lambda e, l: sharded_face_loss(face_loss, head.sharded_logits(e, l), training=False),
                                   args=values)
        report[name] = [float(np.abs(value.numpy() - expected).max() / np.abs(expected).max())
                        for value in strategy.experimental_local_results(per_replica)]
    splittable = {name: errors for name, errors in report.items() if errors is not None}
    assert {"softmax", "arcface", "center_softmax"} <= set(splittable)
    for name, errors in splittable.items():
        assert len(errors) == 2 and max(errors) < 1e-5, (name, errors)


def test_sampled_targets_are_each_rows_own_class_and_the_loss_is_cross_entropy_over_the_kept_classes():
    from heads.sharded_softmax import sharded_face_loss

    keras.utils.set_random_seed(3)
    head = PartialFC(40, sample_rate=0.25, seed=1)
    head.build((None, 6))
    embeddings = np.random.default_rng(0).normal(size=(6, 6)).astype("float32")
    labels = np.array([34, 25, 20, 3, 34, 39], np.int32)
    sharded = head.sharded_logits(embeddings, labels, training=True)
    kept, targets = sharded.class_ids.numpy(), sharded.targets.numpy()
    assert len(kept) == 10 and set(labels) < set(kept) and kept.tolist() == sorted(kept)  # 5 positives + 5 drawn
    np.testing.assert_array_equal(targets, [kept.tolist().index(label) for label in labels])  # each row's own class
    kernel = head.logical(head.kernel).astype(np.float64)
    unit = kernel / np.linalg.norm(kernel, axis=0)
    logits = embeddings.astype(np.float64) @ unit[:, kept]
    own = np.einsum("bd,db->b", embeddings.astype(np.float64), unit[:, labels])
    np.testing.assert_allclose(sharded.logits.numpy()[:, :-1], logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sharded.logits.numpy()[:, -1], own, rtol=1e-5, atol=1e-5)
    loss = sharded_face_loss(SoftmaxLoss(40, 6), sharded, training=True).numpy()
    log_sum = logits.max(axis=1) + np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1))
    np.testing.assert_allclose(loss, log_sum - own, rtol=1e-5, atol=1e-5)
