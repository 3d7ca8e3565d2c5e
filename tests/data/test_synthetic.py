"""The synthetic face dataset: layout, determinism, held-out pairs, reuse and a pixel-space sanity check."""
import os

import numpy as np
import pytest
import tensorflow as tf

from data import synthetic
from data.bins import read_bin
from data.pairs import draw_pairs
from data.synthetic import default_synthetic_root, make_synthetic_dataset, render_identity

SMALL = dict(train_identities=6, images_per_identity=4, eval_identities=4, eval_images_per_identity=3, eval_pairs=12)


def _tree(folder):
    """{relative path: bytes} of every file under `folder`."""
    files = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as file:
                files[os.path.relpath(path, folder)] = file.read()
    return files


def test_layout_and_counts(tmp_path):
    dataset = make_synthetic_dataset(tmp_path, seed=0, **SMALL)
    assert (dataset.num_classes, dataset.num_images) == (6, 24)
    identities = sorted(os.listdir(dataset.train_dir))
    assert identities == [f"id_{index:04d}" for index in range(6)]
    for identity in identities:
        names = sorted(os.listdir(os.path.join(dataset.train_dir, identity)))
        assert names == [f"{number:04d}.jpg" for number in range(4)]
    image = tf.io.decode_jpeg(tf.io.read_file(os.path.join(dataset.train_dir, "id_0000", "0000.jpg")))
    assert image.shape == (112, 112, 3)
    encoded, issame = read_bin(dataset.bin_path)
    assert len(encoded) == 24 and len(issame) == 12
    dataset_folder = os.path.dirname(dataset.train_dir)
    assert os.path.basename(dataset_folder).startswith(f"synthetic-v{synthetic.FORMAT_VERSION}-")
    assert os.path.isfile(os.path.join(dataset_folder, synthetic.COMPLETE_MARKER))
    assert os.listdir(tmp_path) == [os.path.basename(dataset_folder)]


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    first = make_synthetic_dataset(tmp_path / "a", seed=3, **SMALL)
    second = make_synthetic_dataset(tmp_path / "b", seed=3, **SMALL)
    other = make_synthetic_dataset(tmp_path / "c", seed=4, **SMALL)
    first_files = _tree(os.path.dirname(first.train_dir))
    assert first_files == _tree(os.path.dirname(second.train_dir))
    other_files = _tree(os.path.dirname(other.train_dir))
    assert os.path.basename(os.path.dirname(other.train_dir)) != os.path.basename(os.path.dirname(first.train_dir))
    jpegs = [name for name in first_files if name.endswith(".jpg")]
    assert not [name for name in jpegs if first_files[name] == other_files.get(name)]
    assert read_bin(first.bin_path)[0] != read_bin(other.bin_path)[0]


def test_held_out_identities_are_not_training_identities(tmp_path):
    dataset = make_synthetic_dataset(tmp_path, seed=0, **SMALL)
    train_images = set(_tree(dataset.train_dir).values())
    encoded, _ = read_bin(dataset.bin_path)
    assert not train_images & set(encoded)

    def skin(split, index):
        return tuple(synthetic._sample_identity(np.random.default_rng((0, split, index, 0)))["skin"].round(3))

    train_skins = {skin(synthetic.TRAIN_SPLIT, index) for index in range(SMALL["train_identities"])}
    held_out_skins = {skin(synthetic.EVAL_SPLIT, index) for index in range(SMALL["eval_identities"])}
    assert len(held_out_skins) == SMALL["eval_identities"] and not train_skins & held_out_skins


def test_bin_pairs_are_balanced_and_never_self_pairs(tmp_path):
    dataset = make_synthetic_dataset(tmp_path, seed=0, **SMALL)
    encoded, issame = read_bin(dataset.bin_path)
    assert issame.sum() == len(issame) // 2
    assert all(encoded[2 * pair] != encoded[2 * pair + 1] for pair in range(len(issame)))


@pytest.mark.parametrize("identities, per_identity, pairs", [(4, 3, 12), (2, 2, 4), (24, 10, 600)])
def test_sampled_pairs(identities, per_identity, pairs):
    labels = np.repeat(np.arange(identities), per_identity)
    chosen = draw_pairs(np.random.default_rng(0), labels, pairs, "test")
    assert len(chosen) == pairs and sum(issame for _, _, issame in chosen) == pairs // 2
    assert len({(first, second) for first, second, _ in chosen}) == pairs
    for first, second, issame in chosen:
        assert first != second and 0 <= first < identities * per_identity and 0 <= second < identities * per_identity
        assert (first // per_identity == second // per_identity) == issame


def test_complete_dataset_is_reused(tmp_path, monkeypatch):
    dataset = make_synthetic_dataset(tmp_path, seed=0, **SMALL)
    before = os.stat(dataset.bin_path).st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("a complete dataset was generated again")

    monkeypatch.setattr(synthetic, "_generate", fail)
    assert make_synthetic_dataset(tmp_path, seed=0, **SMALL) == dataset
    assert os.stat(dataset.bin_path).st_mtime_ns == before


def test_interrupted_build_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "write_bin", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_dataset(tmp_path, seed=0, **SMALL)
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    dataset = make_synthetic_dataset(tmp_path, seed=0, **SMALL)
    assert len(read_bin(dataset.bin_path)[1]) == SMALL["eval_pairs"]


def test_incomplete_folder_is_rebuilt(tmp_path):
    dataset = make_synthetic_dataset(tmp_path, seed=0, **SMALL)
    folder = os.path.dirname(dataset.train_dir)
    os.remove(os.path.join(folder, synthetic.COMPLETE_MARKER))
    os.remove(dataset.bin_path)
    make_synthetic_dataset(tmp_path, seed=0, **SMALL)
    assert os.path.isfile(dataset.bin_path) and os.path.isfile(os.path.join(folder, synthetic.COMPLETE_MARKER))


@pytest.mark.parametrize("override, message", [
    (dict(eval_pairs=11), "must be even"),
    (dict(eval_pairs=26), "at most 24"),
    (dict(eval_images_per_identity=1), "eval_images_per_identity >= 2"),
    (dict(train_identities=0), "train_identities >= 1"),
])
def test_impossible_sizes_are_refused(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_dataset(tmp_path, **dict(SMALL, **override))
    assert os.listdir(tmp_path) == []


def test_same_identity_is_closer_in_pixel_space_but_never_identical():
    images = np.stack([render_identity((0, 0, index), 6) for index in range(8)]).astype(np.float32)
    centre = images[:, :, 16:96, 16:96].reshape(8, 6, -1)
    distances = np.sqrt(((centre[:, :, None, None] - centre[None, None]) ** 2).mean(-1))
    same_identity = np.broadcast_to(np.eye(8, dtype=bool)[:, None, :, None], distances.shape)
    same_image = same_identity & np.eye(6, dtype=bool)[None, :, None, :]
    within, across = distances[same_identity & ~same_image], distances[~same_identity]
    assert within.min() > 0
    assert within.mean() < 0.85 * across.mean()


def test_render_identity_is_deterministic():
    np.testing.assert_array_equal(render_identity((5, 0, 1), 3), render_identity((5, 0, 1), 3))
    assert render_identity((5, 0, 1), 3).shape == (3, 112, 112, 3)


def test_default_root(monkeypatch):
    monkeypatch.setenv("FACES_SYNTHETIC_DIR", "somewhere")
    assert default_synthetic_root() == "somewhere"
    monkeypatch.delenv("FACES_SYNTHETIC_DIR")
    assert default_synthetic_root() == os.path.join(os.path.expanduser("~"), ".cache", "faces-synthetic")
