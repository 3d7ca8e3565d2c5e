"""Stateful losses under MirroredStrategy on 2 logical CPUs: every replica holds the single-device state."""
import numpy as np
import pytest
import tensorflow as tf

import losses
from recipes.distribution import make_strategy


def copies(variable):
    """The value of `variable` on every replica (one value off a strategy)."""
    return [float(np.asarray(copy.numpy())) for copy in (getattr(variable.value, "values", None) or (variable.value,))]


@pytest.mark.parametrize("loss_name", ["adaface", "curricularface"])
def test_replicas_hold_the_single_device_state_of_the_global_batch(loss_name):
    strategy = make_strategy("mirrored", cpu_replicas=2)
    with strategy.scope():
        mirrored = losses.build_loss(loss_name, 7, 8)
    single = losses.build_loss(loss_name, 7, 8)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(2):
        labels = rng.integers(0, 7, 16).astype("int32")
        embeddings = (rng.normal(size=(16, 8)) * rng.uniform(0.5, 40, size=(16, 1))).astype("float32")
        logits = (rng.uniform(-1, 1, size=(16, 7)) * np.linalg.norm(embeddings, axis=1, keepdims=True)).astype("float32")
        batches.append((labels, embeddings, logits))

    @tf.function
    def step(labels, embeddings, logits):
        return strategy.run(lambda *args: mirrored(*args, training=True), args=(labels, embeddings, logits))

    assert strategy.num_replicas_in_sync == 2
    steps = []
    for batch in batches:
        dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(batch).batch(16))
        per_replica = step(*next(iter(dataset)))
        mirrored_loss = np.concatenate([np.asarray(part) for part in strategy.experimental_local_results(per_replica)])
        single_loss = single(*batch, training=True).numpy()
        steps.append({
            "state": [copies(variable) for variable in mirrored.non_trainable_variables],
            "single_state": [float(variable.numpy()) for variable in single.non_trainable_variables],
            "loss_difference": float(np.abs(mirrored_loss - single_loss).max()),
        })
    for step_report in steps:
        for replica_values, single_value in zip(step_report["state"], step_report["single_state"], strict=True):
            assert len(replica_values) == 2 and replica_values[0] == replica_values[1], replica_values
            assert replica_values[0] == pytest.approx(single_value, rel=1e-5, abs=1e-6)
        assert step_report["loss_difference"] < 1e-4, step_report
    initial = {"adaface": [20.0, 100.0], "curricularface": [0.0]}[loss_name]
    assert all(replica_values[0] != value for replica_values, value in zip(steps[0]["state"], initial))
