"""partial_fc: class-sharded classifier on 2 logical CPU replicas vs norm_dense on one device."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EXACTNESS = r"""
import json, sys
import numpy as np
import keras, tensorflow as tf
from recipes.distribution import make_strategy
from recipes.recipe import Recipe
from recipes.train import build_training_model

loss_name, loss_args = sys.argv[1], json.loads(sys.argv[2])
strategy = make_strategy("mirrored", cpu_replicas=2)
tf.config.experimental.enable_op_determinism()
classes = 7  # 4 + 3 classes: replica 1 holds a padding row
recipe = dict(name="t", loss=loss_name, loss_args=loss_args, backbone="tiny", embedding_size=16, dropout=0.0,
              sync_batchnorm=True, optimizer="sgd", lr=0.002)
rng = np.random.default_rng(1)
images = rng.uniform(0, 255, (48, 112, 112, 3)).astype("float32")
labels = rng.integers(0, classes, 48).astype("int32")
keras.utils.set_random_seed(0)
with strategy.scope():
    sharded = build_training_model(Recipe(**recipe, head="partial_fc"), classes)
keras.utils.set_random_seed(0)
single = build_training_model(Recipe(**recipe, head="norm_dense"), classes)

def state(model):
    kernel = model.head.logical(model.head.kernel) if model is sharded else model.head.kernel.numpy()
    return [kernel] + [np.asarray(w) for w in model.embedder.get_weights()]

def difference(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))

class StepLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []
    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))

initial = difference(state(sharded), state(single))
before = state(single)
records = {}
for name, model in (("sharded", sharded), ("single", single)):
    records[name] = StepLosses()
    model.fit(tf.data.Dataset.from_tensor_slices((images, labels)).batch(16), epochs=1, verbose=0, shuffle=False,
              callbacks=[records[name]])
copies = sharded.head._copies(sharded.head.kernel)
print(json.dumps({
    "initial_difference": initial,
    "shard_rows": [int(copy.shape[0]) for copy in copies],
    "padding_row": float(np.abs(copies[1].numpy()[3]).max()),
    "sharded_losses": records["sharded"].losses, "single_losses": records["single"].losses,
    "weight_difference": difference(state(sharded), state(single)),
    "kernel_change": float(np.abs(state(single)[0] - before[0]).max()),
}))
"""


def run_python(code, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("loss_name, loss_args", [("softmax", {}), ("arcface", {"preset": "arcface"})])
def test_two_replicas_at_rate_1_equal_norm_dense_on_one_device(loss_name, loss_args):
    report = run_python(EXACTNESS, loss_name, json.dumps(loss_args))
    assert report["initial_difference"] == 0.0, report
    assert report["shard_rows"] == [4, 4] and report["padding_row"] == 0.0
    assert len(report["sharded_losses"]) == 3
    np.testing.assert_allclose(report["sharded_losses"], report["single_losses"], rtol=2e-5)
    assert report["weight_difference"] < 2e-5, report
    assert report["kernel_change"] > 20 * report["weight_difference"], report  # the steps moved the classifier
