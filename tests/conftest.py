"""Shared fixtures: a small synthetic face dataset, generated once per test session."""
import os
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["FACES_INDEX_DIR"] = tempfile.mkdtemp(prefix="faces-index-")  # tests never touch ~/.cache
os.environ.setdefault("WANDB_MODE", "disabled")  # tests never upload; the tracking tests set their own mode


@pytest.fixture(scope="session")
def tiny_faces(tmp_path_factory):
    """A `SyntheticDataset` of 8 training identities × 8 images and a 60-pair held-out `.bin`."""
    from data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("faces"), train_identities=8, images_per_identity=8,
                                  eval_identities=6, eval_images_per_identity=4, eval_pairs=60, seed=3)


@pytest.fixture
def tiny_overrides(tiny_faces, tmp_path):
    """CLI-style overrides for a fast run of any recipe on `tiny_faces`."""
    return {
        "backbone": "tiny", "embedding_size": 16, "batch_size": 16, "epochs": 1, "data": tiny_faces.train_dir,
        "eval_bins": [tiny_faces.bin_path], "eval_batch_size": 32, "runs_dir": str(tmp_path / "runs"), "verbose": 0,
    }
