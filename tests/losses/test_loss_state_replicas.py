"""Stateful losses under MirroredStrategy on 2 logical CPUs: every replica holds the single-device state."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REPLICA_CHECK = r"""
import json, sys
import numpy as np
import tensorflow as tf
from recipes.distribution import make_strategy
strategy = make_strategy("mirrored", cpu_replicas=2)
import losses

name = sys.argv[1]
with strategy.scope():
    mirrored = losses.build_loss(name, 7, 8)
single = losses.build_loss(name, 7, 8)
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

def copies(variable):
    return [float(np.asarray(copy.numpy())) for copy in (getattr(variable.value, "values", None) or (variable.value,))]

report = {"replicas": strategy.num_replicas_in_sync, "steps": []}
for batch in batches:
    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(batch).batch(16))
    per_replica = step(*next(iter(dataset)))
    mirrored_loss = np.concatenate([np.asarray(part) for part in strategy.experimental_local_results(per_replica)])
    single_loss = single(*batch, training=True).numpy()
    report["steps"].append({
        "state": [copies(variable) for variable in mirrored.non_trainable_variables],
        "single_state": [float(variable.numpy()) for variable in single.non_trainable_variables],
        "loss_difference": float(np.abs(mirrored_loss - single_loss).max()),
    })
print(json.dumps(report))
"""


@pytest.mark.parametrize("loss_name", ["adaface", "curricularface"])
def test_replicas_hold_the_single_device_state_of_the_global_batch(loss_name):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", REPLICA_CHECK, loss_name], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and len(report["steps"]) == 2
    for step in report["steps"]:
        for copies, single in zip(step["state"], step["single_state"], strict=True):
            assert len(copies) == 2 and copies[0] == copies[1], copies
            assert copies[0] == pytest.approx(single, rel=1e-5, abs=1e-6)
        assert step["loss_difference"] < 1e-4, step
    initial = {"adaface": [20.0, 100.0], "curricularface": [0.0]}[loss_name]
    assert all(copies[0] != value for copies, value in zip(report["steps"][0]["state"], initial))
