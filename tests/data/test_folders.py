"""Identity-folder scanning: names → contiguous ids, bad files found by their first bytes, the index cache."""
import gzip
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from data import folders, index_cache
from data.folders import IdentityFolder, scan_identity_folder
from image_files import backdate


def _jpeg(seed=0, size=16):
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def _write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(content)


@pytest.fixture
def count_scans(monkeypatch):
    """A list that gets the path of every identity folder the next scans actually list."""
    scanned = []
    real = folders._scan_identity

    def counting(folder):
        scanned.append(os.path.basename(folder))
        return real(folder)

    monkeypatch.setattr(folders, "_scan_identity", counting)
    return scanned


def test_sorted_folder_names_become_contiguous_ids(tmp_path):
    for identity, count in (("Tom_Hanks", 2), ("0042", 3), ("0", 1), ("10", 2)):
        for number in range(count):
            _write(tmp_path / identity / f"{number}.jpg", _jpeg(number))
    folder = scan_identity_folder(tmp_path, cache=False)
    assert isinstance(folder, IdentityFolder)
    assert folder.class_names == ("0", "0042", "10", "Tom_Hanks")
    assert folder.num_classes == 4 and len(folder) == 8
    assert folder.labels.dtype == np.int32 and folder.labels.tolist() == [0, 1, 1, 1, 2, 2, 3, 3]
    assert [os.path.relpath(path, tmp_path) for path in folder.paths[:4]] == [
        os.path.join("0", "0.jpg"), *(os.path.join("0042", f"{n}.jpg") for n in range(3))]
    assert folder.skipped == ()


def test_bad_files_are_skipped_by_their_first_bytes_and_named(tmp_path):
    _write(tmp_path / "a" / "good.jpg", _jpeg())
    _write(tmp_path / "a" / "empty.jpg", b"")
    _write(tmp_path / "a" / "page.jpg", b"<html>404 not found</html>")
    png = io.BytesIO()
    Image.new("RGBA", (4, 4)).save(png, format="PNG")
    _write(tmp_path / "a" / "really_a_png.JPG", png.getvalue())
    _write(tmp_path / "a" / "._good.jpg", b"\x00\x05\x16\x07 AppleDouble")
    _write(tmp_path / "a" / "notes.txt", b"not an image name")
    _write(tmp_path / ".hidden_identity" / "x.jpg", _jpeg())
    folder = scan_identity_folder(tmp_path, cache=False)
    assert folder.class_names == ("a",)
    assert [os.path.basename(path) for path in folder.paths] == ["good.jpg", "really_a_png.JPG"]
    assert [(os.path.relpath(path, tmp_path), reason) for path, reason in folder.skipped] == [
        (os.path.join("a", "empty.jpg"), "empty file (0 bytes)"),
        (os.path.join("a", "page.jpg"), "not a JPEG or PNG file (starts with b'<html>40')"),
    ]


def test_min_images_and_max_classes(tmp_path):
    for identity, count in (("a", 1), ("b", 3), ("c", 2), ("d", 4)):
        for number in range(count):
            _write(tmp_path / identity / f"{number}.jpg", _jpeg(number))
    _write(tmp_path / "a" / "bad.jpg", b"")
    _write(tmp_path / "d" / "bad.jpg", b"")
    folder = scan_identity_folder(tmp_path, min_images=2, max_classes=2, cache=False)
    assert folder.class_names == ("b", "c") and len(folder) == 5
    assert folder.labels.tolist() == [0, 0, 0, 1, 1]
    assert [os.path.relpath(path, tmp_path) for path, _ in folder.skipped] == [os.path.join("a", "bad.jpg")]


@pytest.mark.parametrize("options, message", [
    (dict(min_images=0), "min_images=0 must be a positive integer"),
    (dict(max_classes=0), "max_classes=0 must be a positive integer or None"),
    (dict(min_images=True), "min_images=True"),
])
def test_bad_options_are_refused(tmp_path, options, message):
    _write(tmp_path / "a" / "0.jpg", _jpeg())
    with pytest.raises(ValueError, match=message):
        scan_identity_folder(tmp_path, cache=False, **options)


def test_missing_or_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        scan_identity_folder(tmp_path / "nowhere")
    _write(tmp_path / "a" / "broken.jpg", b"")
    with pytest.raises(ValueError, match=r"no identity sub-folders .* 1 bad file\(s\) were skipped, e.g. .*broken.jpg"):
        scan_identity_folder(tmp_path, cache=False)


def test_index_is_reused_without_rescanning_and_rebuilt_after_a_change(tmp_path, count_scans):
    for identity in ("Tom_Hanks", "0", "0042"):
        for number in range(3):
            _write(tmp_path / identity / f"{number}.jpg", _jpeg(number))
    _write(tmp_path / "0" / "empty.jpg", b"")
    backdate(tmp_path)
    first = scan_identity_folder(tmp_path)
    assert sorted(count_scans) == ["0", "0042", "Tom_Hanks"]
    assert os.path.isfile(index_cache.index_locations(tmp_path)[0])

    count_scans.clear()
    again = scan_identity_folder(tmp_path)
    assert count_scans == []
    assert again.paths == first.paths and again.class_names == first.class_names
    assert again.labels.tolist() == first.labels.tolist() and again.skipped == first.skipped

    _write(tmp_path / "0042" / "3.jpg", _jpeg(3))
    changed = scan_identity_folder(tmp_path)
    assert count_scans == ["0042"]
    assert str(tmp_path / "0042" / "3.jpg") in changed.paths and len(changed) == len(first) + 1

    backdate(tmp_path)
    scan_identity_folder(tmp_path)
    count_scans.clear()
    os.rename(tmp_path / "Tom_Hanks", tmp_path / "Tom_Hanks_2")
    renamed = scan_identity_folder(tmp_path)
    assert count_scans == ["Tom_Hanks_2"]
    assert renamed.class_names == ("0", "0042", "Tom_Hanks_2")


def test_a_folder_changed_moments_ago_is_rescanned_until_it_settles(tmp_path, count_scans):
    _write(tmp_path / "a" / "0.jpg", _jpeg())
    scan_identity_folder(tmp_path)
    scan_identity_folder(tmp_path)
    assert count_scans == ["a", "a"]
    backdate(tmp_path)
    scan_identity_folder(tmp_path)
    scan_identity_folder(tmp_path)
    assert count_scans == ["a", "a", "a"]


def test_index_is_gzipped_json_and_a_corrupt_one_is_rebuilt(tmp_path, count_scans):
    _write(tmp_path / "a" / "0.jpg", _jpeg())
    _write(tmp_path / "a" / "1.jpg", b"")
    backdate(tmp_path)
    scan_identity_folder(tmp_path)
    with gzip.open(index_cache.index_locations(tmp_path)[0]) as file:
        content = json.load(file)
    assert content["format"] == "faces-index" and content["version"] == index_cache.FORMAT_VERSION
    assert content["identities"]["a"]["files"] == "0.jpg"
    assert content["identities"]["a"]["skipped"] == [["1.jpg", "empty file (0 bytes)"]]
    _write(index_cache.index_locations(tmp_path)[0], b"\x80\x04 not gzip, not json")
    backdate(tmp_path)
    assert len(scan_identity_folder(tmp_path)) == 1
    assert count_scans == ["a", "a"]


def test_index_goes_to_the_cache_folder_never_into_the_data_folder(tmp_path, monkeypatch, count_scans):
    data = tmp_path / "data"
    _write(data / "a" / "0.jpg", _jpeg())
    backdate(data)
    monkeypatch.setenv("FACES_INDEX_DIR", str(tmp_path / "cache"))
    scan_identity_folder(data)
    assert sorted(os.listdir(data)) == ["a"] and os.listdir(data / "a") == ["0.jpg"]
    (stored,) = os.listdir(tmp_path / "cache")
    assert stored.endswith(".json.gz")
    scan_identity_folder(data)
    assert count_scans == ["a"]


def test_cache_false_writes_nothing_and_cache_folder_is_used_when_given(tmp_path, count_scans):
    data = tmp_path / "data"
    _write(data / "a" / "0.jpg", _jpeg())
    backdate(data)
    scan_identity_folder(data, cache=False)
    assert os.listdir(data) == ["a"]
    scan_identity_folder(data, cache=str(tmp_path / "elsewhere"))
    scan_identity_folder(data, cache=str(tmp_path / "elsewhere"))
    assert os.listdir(data) == ["a"] and len(os.listdir(tmp_path / "elsewhere")) == 1
    assert count_scans == ["a", "a"]
