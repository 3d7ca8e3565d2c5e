"""Reading, writing and decoding insightface verification `.bin` files."""
import io
import os
import pickle

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.bins import BinFormatError, check_bin, decoded_batches, load_bin_images, read_bin, write_bin
from data.pipeline import decode_face


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _random_images(count, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def test_write_then_read_round_trips(tmp_path):
    encoded = [_png(image) for image in _random_images(4, 8)]
    path = tmp_path / "pairs.bin"
    write_bin(path, encoded, [True, False])
    read_encoded, issame = read_bin(path)
    assert read_encoded == encoded
    assert issame.dtype == bool and issame.tolist() == [True, False]
    assert [name for name in os.listdir(tmp_path)] == ["pairs.bin"]


def test_write_refuses_count_mismatch(tmp_path):
    with pytest.raises(ValueError, match="3 images for 2 pair labels"):
        write_bin(tmp_path / "bad.bin", [b"a", b"b", b"c"], [True, False])
    assert not (tmp_path / "bad.bin").exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_reads_numpy_uint8_arrays_and_numpy_bools(tmp_path, protocol):
    encoded = [_png(image) for image in _random_images(4, 8)]
    as_arrays = [np.frombuffer(item, dtype=np.uint8) for item in encoded]
    path = tmp_path / "numpy.bin"
    with open(path, "wb") as file:
        pickle.dump((as_arrays, np.array([False, True])), file, protocol=protocol)
    read_encoded, issame = read_bin(path)
    assert read_encoded == encoded
    assert issame.tolist() == [False, True]


def _write_marker(path):
    with open(path, "w") as file:
        file.write("code ran")


class _WritesMarker:
    """Unpickling this calls `_write_marker(marker)`: a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (_write_marker, (self.marker,))


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload_class, refused", [(_WritesMarker, "._write_marker'"), (_RunsShell, ".system'")])
def test_refuses_pickles_that_would_run_code(tmp_path, payload_class, refused):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([payload_class(str(marker)), b"x"], [True])))
    with pytest.raises(BinFormatError) as raised:
        read_bin(path)
    message = str(raised.value)
    assert str(path) in message and refused in message
    assert "may run code" in message and "not an insightface verification .bin" in message
    assert not marker.exists()


def test_count_mismatch_names_file_and_counts(tmp_path):
    path = tmp_path / "odd.bin"
    path.write_bytes(pickle.dumps(([b"a", b"b", b"c"], [True, False])))
    with pytest.raises(BinFormatError, match=r"odd\.bin.*3 images but 2 pair labels"):
        read_bin(path)


@pytest.mark.parametrize("content, expected", [
    ((b"a", b"b", [True]), "tuple of length 3"),
    ({"bins": []}, "a dict"),
    (([1, 2], [True]), "image 0 is a int"),
    (([b"a", b"b"], ["yes"]), "issame labels"),
])
def test_wrong_structure_is_refused(tmp_path, content, expected):
    path = tmp_path / "wrong.bin"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(BinFormatError, match=expected):
        read_bin(path)


def test_garbage_and_missing_files(tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00not a pickle at all")
    with pytest.raises(BinFormatError, match="garbage.bin"):
        read_bin(garbage)
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        read_bin(tmp_path / "missing.bin")


def test_load_bin_images_decodes_exact_pixels(tmp_path):
    images = _random_images(4, 16, seed=1)
    path = tmp_path / "pixels.bin"
    write_bin(path, [_png(image) for image in images], [True, False])
    decoded, issame = load_bin_images(path, image_size=16)
    assert decoded.dtype == np.uint8 and decoded.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(decoded, images)
    assert issame.tolist() == [True, False]


def test_load_bin_images_resizes_grey_and_other_sizes(tmp_path):
    flat = np.full((20, 20), 77, np.uint8)
    colour = np.zeros((8, 8, 3), np.uint8) + np.array([10, 200, 30], np.uint8)
    path = tmp_path / "sizes.bin"
    write_bin(path, [_png(flat), _png(colour)], [False])
    decoded, _ = load_bin_images(path, image_size=12)
    assert decoded.shape == (2, 12, 12, 3)
    assert (decoded[0] == 77).all()
    assert (decoded[1] == [10, 200, 30]).all()


def test_load_bin_images_reports_undecodable_image(tmp_path):
    path = tmp_path / "broken.bin"
    write_bin(path, [b"not an image", b"nor this"], [True])
    with pytest.raises(BinFormatError, match="broken.bin.*could not be decoded"):
        load_bin_images(path, image_size=8)


@pytest.mark.parametrize("content", [([], []), ((), np.zeros(0, bool))])
def test_a_bin_with_no_pairs_is_refused_naming_the_file(tmp_path, content):
    path = tmp_path / "empty.bin"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(BinFormatError, match=r"empty.bin' holds 0 pairs .* make_bin"):
        read_bin(path)
    with pytest.raises(ValueError, match="pass at least one pair"):
        write_bin(tmp_path / "none.bin", [], [])
    assert not os.path.exists(tmp_path / "none.bin")


def _slow_and_quick_images(count=24, slow_every=4, slow_side=800, seed=7):
    """Encoded PNGs: every `slow_every`-th a large noisy one (slow to decode), the others 16 x 16 (quick)."""
    rng = np.random.default_rng(seed)
    return [_png(rng.integers(0, 256, (slow_side if index % slow_every == 0 else 16,) * 2 + (3,), dtype=np.uint8))
            for index in range(count)]


def test_pairs_keep_their_order_when_images_decode_at_different_speeds(tmp_path):
    encoded = _slow_and_quick_images()
    expected = np.stack([decode_face(item, 16).numpy() for item in encoded])
    assert len({image.tobytes() for image in expected}) == len(encoded)  # every index has its own image
    path = tmp_path / "order.bin"
    write_bin(path, encoded, [index % 2 == 0 for index in range(len(encoded) // 2)])
    images, issame = load_bin_images(path, image_size=16, batch_size=5)
    np.testing.assert_array_equal(images, expected)
    assert issame.tolist() == [index % 2 == 0 for index in range(len(encoded) // 2)]
    # TensorFlow fuses map and batch by default, which keeps any map in order; without that fusion only a
    # deterministic map does: quick images would overtake the slow one before them.
    options = tf.data.Options()
    options.experimental_optimization.map_and_batch_fusion = False
    unfused = decoded_batches(encoded, 16, 5).with_options(options)
    np.testing.assert_array_equal(np.concatenate([batch.numpy() for batch in unfused]), expected)


@pytest.mark.parametrize("make, message", [
    (lambda path: path.mkdir(), r"'.*given' is a folder, not a verification \.bin; pass the \.bin files in it"),
    (lambda path: path.write_bytes(b""), r"'.*given' is empty \(0 bytes\)"),
    (lambda path: path.write_text("lfw pairs\n1 2 3\n"), r"'.*given' could not be unpickled"),
    (lambda path: path.write_bytes(pickle.dumps(([b"x"] * 2, [True]))[:-9]), r"'.*given' could not be unpickled.*"
                                                                              r"truncated"),
    (lambda path: path.write_bytes(pickle.dumps({"bins": [], "issame": []})), r"'.*given' holds a dict"),
    (lambda path: path.write_bytes(pickle.dumps(([], []))), r"'.*given' holds 0 pairs"),
    (lambda path: path.write_bytes(pickle.dumps(([b"\xff\xd8\xff broken", _png(np.zeros((4, 4, 3), np.uint8))],
                                                 [True]))), r"'.*given': image 0 of the first pair: cannot be decoded"),
])
def test_check_bin_refuses_what_decoding_would_refuse_later(tmp_path, make, message):
    path = tmp_path / "given"
    make(path)
    with pytest.raises(BinFormatError, match=message):
        check_bin(path)


def test_check_bin_counts_the_pairs_of_a_good_file(tmp_path):
    path = tmp_path / "good.bin"
    write_bin(path, [_png(image) for image in _random_images(6, 8)], [True, False, True])
    assert check_bin(path) == 3
