"""The training pipeline: bad files never stop an epoch and are named; decoding, determinism, small data."""
import io
import os
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.bins import load_bin_images, write_bin
from data.folders import scan_identity_folder
from data.decode import decode_face
from data.pipeline import SkippedFiles, find_undecodable, train_dataset
from image_files import _encode, _pixels, _write, write_acceptance_folder
from registry import AUGMENTATIONS


def test_acceptance_folder_gives_three_classes_runs_an_epoch_and_names_the_bad_files(tmp_path):
    bad = write_acceptance_folder(str(tmp_path / "faces"))
    folder = scan_identity_folder(str(tmp_path / "faces"))
    assert folder.class_names == ("0", "0042", "Tom_Hanks") and folder.num_classes == 3
    log = tmp_path / "skipped.tsv"
    skipped = SkippedFiles(log)
    skipped.extend(folder.skipped)
    batch_size = 4
    dataset = train_dataset(folder.paths, folder.labels, batch_size, skipped=skipped)
    for images, labels in dataset.take(2 * len(folder) // batch_size):
        assert images.shape == (batch_size, 112, 112, 3) and images.dtype == tf.float32
        assert 0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255
        assert set(labels.numpy().tolist()) <= {0, 1, 2}
    assert {path for path, _ in skipped} == bad
    with open(log) as file:
        logged = dict(line.rstrip("\n").split("\t") for line in file)
    assert set(logged) == bad
    assert logged[str(tmp_path / "faces" / "0042" / "truncated.jpg")].startswith("cannot be decoded")
    assert logged[str(tmp_path / "faces" / "0" / "zero.jpg")] == "empty file (0 bytes)"
    assert "not a JPEG or PNG" in logged[str(tmp_path / "faces" / "Tom_Hanks" / "readme.jpg")]


def test_files_that_break_during_training_are_dropped_and_named(tmp_path):
    paths = []
    for index in range(40):
        paths.append(str(tmp_path / f"{index:02d}.jpg"))
        _write(paths[-1], _encode(_pixels(index, 112), "JPEG"))
    skipped = SkippedFiles()
    dataset = train_dataset(paths, np.arange(40) % 4, 8, skipped=skipped)
    assert len(skipped) == 0
    with open(paths[7], "r+b") as file:
        file.truncate(300)
    os.remove(paths[23])
    batches = list(dataset.take(15))
    assert all(images.shape == (8, 112, 112, 3) for images, _ in batches)
    reasons = dict(skipped)
    assert set(reasons) == {paths[7], paths[23]}
    assert reasons[paths[7]].startswith("cannot be decoded") and reasons[paths[23]].startswith("cannot be read")
    assert skipped.dropped_samples >= 4


def test_when_no_sampled_image_decodes_the_error_names_them(tmp_path):
    paths = [str(tmp_path / f"{index}.jpg") for index in range(3)]
    for path in paths:
        _write(path, _encode(_pixels(0, 112), "JPEG")[:100])
    with pytest.raises(ValueError, match=r"none of the 3 images .*0\.jpg.*cannot be decoded"):
        train_dataset(paths, [0, 1, 2], 2)


def test_deterministic_stream_and_resume_at_a_step(tmp_path):
    bad = write_acceptance_folder(str(tmp_path))
    folder = scan_identity_folder(str(tmp_path))
    paths = [path for path in folder.paths if path not in bad]
    labels = [label for path, label in zip(folder.paths, folder.labels) if path not in bad]

    def batches(**options):
        dataset = train_dataset(paths, labels, 5, augment=("flip", "brightness", "random_erasing"), **options)
        return [(images.numpy(), labels.numpy()) for images, labels in dataset.take(6)]

    first, second = batches(seed=3), batches(seed=3)
    for (images_a, labels_a), (images_b, labels_b) in zip(first, second):
        np.testing.assert_array_equal(images_a, images_b)
        np.testing.assert_array_equal(labels_a, labels_b)
    other = batches(seed=4)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(first, other))
    resumed = batches(seed=3, start_step=2)
    np.testing.assert_array_equal(resumed[0][0], first[2][0])
    np.testing.assert_array_equal(resumed[3][1], first[5][1])


def test_an_epoch_visits_every_file_once_per_pass(tmp_path):
    paths = [str(tmp_path / f"{index}.png") for index in range(12)]
    for index, path in enumerate(paths):
        _write(path, _encode(np.full((112, 112, 3), index, np.uint8), "PNG"))
    dataset = train_dataset(paths, np.arange(12), 4, augment=())
    seen = [int(images[row, 0, 0, 0]) for images, _ in dataset.take(6) for row in range(4)]
    assert sorted(seen[:12]) == list(range(12)) and sorted(seen[12:]) == list(range(12))
    assert seen[:12] != seen[12:]


@pytest.mark.parametrize("mode, channels", [("RGBA", 4), ("L", 1), ("RGB", 3)])
def test_png_decoding_matches_pil(tmp_path, mode, channels):
    pixels = np.random.default_rng(channels).integers(0, 256, (112, 112, channels), dtype=np.uint8).squeeze()
    encoded = _encode(pixels, "PNG", mode)
    expected = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))
    np.testing.assert_array_equal(decode_face(encoded, 112).numpy(), expected)


def test_other_sizes_are_resized_exactly_as_verification_images_are(tmp_path):
    encoded = _encode(_pixels(7, 250), "JPEG")
    write_bin(tmp_path / "one.bin", [encoded, encoded], [True])
    from_bin, _ = load_bin_images(tmp_path / "one.bin", image_size=112)
    decoded = decode_face(encoded, 112).numpy()
    assert decoded.shape == (112, 112, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, from_bin[0])


def test_fewer_images_than_a_batch_warns_and_still_gives_full_batches(tmp_path):
    paths = [str(tmp_path / f"{index}.png") for index in range(3)]
    for index, path in enumerate(paths):
        _write(path, _encode(np.full((112, 112, 3), 10 * index, np.uint8), "PNG"))
    with pytest.warns(UserWarning, match="3 images, fewer than one batch of 8"):
        dataset = train_dataset(paths, [0, 0, 1], 8, augment=())
    images, labels = next(iter(dataset))
    assert images.shape == (8, 112, 112, 3)
    assert {int(value) for value in images[:, 0, 0, 0]} == {0, 10, 20}
    assert sorted(labels.numpy().tolist()).count(1) in (2, 3)


def test_a_single_image_dataset_and_a_full_batch_do_not_warn(tmp_path):
    path = str(tmp_path / "only.png")
    _write(path, _encode(np.zeros((112, 112, 3), np.uint8), "PNG"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_dataset([path], [0], 1, augment=())
    images, labels = next(iter(train_dataset([path], [0], 1, augment=())))
    assert images.shape == (1, 112, 112, 3) and labels.numpy().tolist() == [0]


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_every_augmentation_keeps_shape_dtype_and_is_seeded(name):
    image = tf.constant(_pixels(3, 112))
    augmentation = AUGMENTATIONS.get(name)
    seed = tf.constant([1, 2], tf.int64)
    out = augmentation(image, seed)
    assert out.shape == (112, 112, 3) and out.dtype == tf.uint8
    np.testing.assert_array_equal(out.numpy(), augmentation(image, seed).numpy())
    as_float = augmentation(tf.cast(image, tf.float32), seed)
    assert as_float.dtype == tf.float32
    assert np.abs(as_float.numpy() - out.numpy()).max() <= 0.5 + 1e-4
    outputs = {augmentation(image, tf.constant([1, s], tf.int64)).numpy().tobytes() for s in range(8)}
    assert len(outputs) > 1, f"augmentation {name!r} ignores its seed"


def test_skipped_files_log_is_read_back_and_never_repeats(tmp_path):
    log = tmp_path / "skipped.tsv"
    first = SkippedFiles(log, echo=0)
    assert first.add("a.jpg", "empty file (0 bytes)") and not first.add("a.jpg", "again")
    first.add("b.jpg", "cannot be decoded:\tsome\nmessage")
    second = SkippedFiles(log, echo=0)
    assert list(second) == [("a.jpg", "empty file (0 bytes)"), ("b.jpg", "cannot be decoded: some message")]
    assert not second.add("b.jpg", "later") and second.add("c.jpg", "x")
    with open(log) as file:
        assert [line.split("\t")[0] for line in file] == ["a.jpg", "b.jpg", "c.jpg"]


def test_find_undecodable_names_only_the_broken_files(tmp_path):
    bad = write_acceptance_folder(str(tmp_path))
    paths = sorted(os.path.join(directory, name) for directory, _, names in os.walk(tmp_path) for name in names)
    found = dict(find_undecodable(paths, progress=False))
    assert set(found) == bad
