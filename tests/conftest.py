"""Shared fixtures, and how tests stay fast (`make test`: the suite in about 5 minutes on 2 cores; `make test-fast`:
the tests not marked slow, in about a minute, for the edit loop).

- Read a trained run, do not train one: a test that only reads a run folder takes `softmax_run` (a 1-epoch softmax
  run on `tiny_faces`, trained once per test process). A test that writes into the folder (exports into it,
  resumes it, damages it) takes `softmax_run_copy`, its private copy. Train in the test only when the training
  itself is the point, with the `tiny_overrides` (tiny backbone, one epoch, 64 images).
- Call in process: `recipes.commands.cli.main([...])` with `capsys`; a refusal is `SystemExit` with code 2:
  `with pytest.raises(SystemExit) as stopped: main([...])`. Start a subprocess only for what needs one (a signal,
  a kill and resume, several workers, the console script's exit code, what a fresh process imports): each costs
  a TensorFlow start.
- Two replicas in process: every test process splits its CPU into two logical devices before TensorFlow starts,
  so `make_strategy("mirrored", cpu_replicas=2)` (and `--cpu_replicas=2`) work in a test, and gives every
  MirroredStrategy collective keys of its own.
- Mark `@pytest.mark.slow` what starts a subprocess, trains a run, or takes more than a few seconds;
  `make test-fast` (`pytest -m "not slow"`) leaves those out.
"""
import functools
import os
import shutil
import tempfile

import pytest

os.environ["FACES_INDEX_DIR"] = tempfile.mkdtemp(prefix="faces-index-")  # tests never touch ~/.cache
os.environ.setdefault("WANDB_MODE", "disabled")  # tests never upload; the tracking tests set their own mode

from recipes.commands.console import quiet_tensorflow  # noqa: E402

quiet_tensorflow([])  # TensorFlow's start-up lines would print after the summary (pytest's capture of conftest)

import tensorflow as tf  # noqa: E402  (after the environment above)

TEST_REPLICAS = 2
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * TEST_REPLICAS)


def _own_collective_keys(init):
    """`MirroredStrategy.__init__` that first moves the strategy's collective keys past every earlier strategy's.

    Collectives of two strategies of one process share group and instance keys, and an all-gather
    where an earlier strategy ran an all-reduce aborts them all; TensorFlow's own tests move
    `_collective_key_base` by 100000 per strategy the same way (distribute/strategy_combinations.py).
    """
    @functools.wraps(init)
    def init_with_own_keys(self, *args, **kwargs):
        tf.distribute.MirroredStrategy._collective_key_base += 100_000
        init(self, *args, **kwargs)
    return init_with_own_keys


tf.distribute.MirroredStrategy.__init__ = _own_collective_keys(tf.distribute.MirroredStrategy.__init__)


@pytest.hookimpl(trylast=True)  # after `-m` has deselected
def pytest_collection_modifyitems(config, items):
    """Slow tests first. `make test` runs pytest-xdist's `--dist worksteal`: the first test process takes the
    first half (the long tests, then short ones), the second the other half, and a process that runs out steals
    the end of the other's queue, so the short tests even out the finish."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def tiny_faces(tmp_path_factory):
    """A `SyntheticDataset` of 8 training identities × 8 images and a 60-pair held-out `.bin`."""
    from data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("faces"), train_identities=8, images_per_identity=8,
                                  eval_identities=6, eval_images_per_identity=4, eval_pairs=60, seed=3)


def tiny_run_overrides(tiny_faces, runs_dir):
    """CLI-style overrides for a fast run of any recipe on `tiny_faces`, its run folder under `runs_dir`."""
    return {
        "backbone": "tiny", "embedding_size": 16, "batch_size": 16, "epochs": 1, "data": tiny_faces.train_dir,
        "eval_bins": [tiny_faces.bin_path], "eval_batch_size": 32, "runs_dir": str(runs_dir), "verbose": 0,
    }


@pytest.fixture
def tiny_overrides(tiny_faces, tmp_path):
    """CLI-style overrides for a fast run of any recipe on `tiny_faces`."""
    return tiny_run_overrides(tiny_faces, tmp_path / "runs")


@pytest.fixture(scope="session")
def softmax_run(tiny_faces, tmp_path_factory):
    """The folder of a finished 1-epoch softmax run (`tiny_overrides`), trained once per test process: read only."""
    import recipes  # noqa: F401
    from recipes.resolve import resolve_recipe
    from recipes.train import train

    return train(resolve_recipe("softmax", tiny_run_overrides(tiny_faces, tmp_path_factory.mktemp("shared-runs"))))


@pytest.fixture
def softmax_run_copy(softmax_run, tmp_path):
    """A private copy of `softmax_run`, free to change."""
    return str(shutil.copytree(softmax_run, tmp_path / os.path.basename(softmax_run), symlinks=True))


@pytest.fixture
def op_determinism():
    """TensorFlow's deterministic ops for this test only, also where it trains with `--deterministic=true`: turned
    off after it, so the later tests of this process run as in a fresh one."""
    from tensorflow.python.framework import config

    tf.config.experimental.enable_op_determinism()
    yield
    config.disable_op_determinism()
