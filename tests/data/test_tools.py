"""`make_bin` (balanced verification pairs from an identity folder) and `data_stats`."""
import io
import itertools
import os

import numpy as np
import pytest
from PIL import Image

from data.bins import load_bin_images, read_bin
from data.decode import decode_face
from data.pairs import _different_pairs, _same_pairs, draw_pairs
from data.tools import data_stats, format_data_stats, format_make_bin, make_bin


def _jpeg(seed, size=112):
    buffer = io.BytesIO()
    coarse = np.random.default_rng(seed).uniform(0, 255, (4, 4, 3)).astype(np.uint8)
    Image.fromarray(coarse).resize((size, size), Image.BILINEAR).save(buffer, format="JPEG")
    return buffer.getvalue()


def _write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(content)


def write_people(root, counts=(("ann", 5), ("bob", 4), ("cy", 1), ("dee", 3), ("ed", 2))):
    for number, (identity, count) in enumerate(counts):
        for index in range(count):
            _write(os.path.join(root, identity, f"{index}.jpg"), _jpeg(100 * number + index))


def _pairs_of(summary):
    with open(summary["pairs_file"]) as file:
        return [(first, second, issame == "1") for first, second, issame in (line.split() for line in file)]


def test_make_bin_round_trips_balanced_distinct_pairs_never_an_image_with_itself(tmp_path):
    data = str(tmp_path / "people")
    write_people(data)
    _write(os.path.join(data, "bob", "big.jpg"), _jpeg(77, size=250))
    summary = make_bin(data, pairs=20, out=str(tmp_path / "mine.bin"), seed=1)
    assert (summary["pairs"], summary["same"], summary["different"]) == (20, 10, 10)
    encoded, issame = read_bin(tmp_path / "mine.bin")
    pairs = _pairs_of(summary)
    assert len(encoded) == 40 and issame.tolist() == [same for _, _, same in pairs]
    assert issame.sum() == 10
    for index, (first, second, same) in enumerate(pairs):
        assert first != second
        assert (first.split(os.sep)[0] == second.split(os.sep)[0]) == same
        for stored, name in zip(encoded[2 * index: 2 * index + 2], (first, second)):
            with open(os.path.join(data, name), "rb") as file:
                original = file.read()
            if name.endswith("big.jpg"):
                np.testing.assert_array_equal(decode_face(stored, 112).numpy(), decode_face(original, 112).numpy())
            else:
                assert stored == original
    assert len({frozenset(pair[:2]) for pair in pairs}) == 20
    assert not any(same and first.startswith("cy") for first, _, same in pairs)
    images, labels = load_bin_images(tmp_path / "mine.bin")
    assert images.shape == (40, 112, 112, 3) and labels.tolist() == issame.tolist()
    assert "20 pairs (10 same identity, 10 different)" in format_make_bin(summary)


def test_make_bin_is_seeded(tmp_path):
    data = str(tmp_path / "people")
    write_people(data)
    first = _pairs_of(make_bin(data, pairs=10, out=str(tmp_path / "a.bin"), seed=5))
    again = _pairs_of(make_bin(data, pairs=10, out=str(tmp_path / "b.bin"), seed=5))
    other = _pairs_of(make_bin(data, pairs=10, out=str(tmp_path / "c.bin"), seed=6))
    assert first == again and first != other
    with open(tmp_path / "a.bin", "rb") as a, open(tmp_path / "b.bin", "rb") as b:
        assert a.read() == b.read()


def test_make_bin_leaves_out_files_that_do_not_decode(tmp_path):
    data = str(tmp_path / "people")
    write_people(data, counts=(("ann", 3), ("bob", 3)))
    truncated = os.path.join(data, "ann", "9.jpg")
    _write(truncated, _jpeg(9)[:200])
    _write(os.path.join(data, "bob", "empty.jpg"), b"")
    summary = make_bin(data, pairs=12, out=str(tmp_path / "out.bin"))
    names = {name for first, second, _ in _pairs_of(summary) for name in (first, second)}
    assert os.path.join("ann", "9.jpg") not in names and len(names) == 6
    left_out = dict(summary["left_out"])
    assert left_out[truncated].startswith("cannot be decoded")
    assert left_out[os.path.join(data, "bob", "empty.jpg")] == "empty file (0 bytes)"


@pytest.mark.parametrize("pairs, message", [
    (7, "must be even"),
    (0, "must be a positive integer"),
    (40, r"only 5 distinct same-identity and 16 different-identity pairs, but --pairs=40 needs 20 of each"),
])
def test_make_bin_refuses_impossible_requests(tmp_path, pairs, message):
    data = str(tmp_path / "people")
    write_people(data, counts=(("ann", 2), ("bob", 2), ("cy", 3)))
    with pytest.raises(ValueError, match=message):
        make_bin(data, pairs=pairs, out=str(tmp_path / "x.bin"))
    assert not os.path.exists(tmp_path / "x.bin")


def test_pair_numbering_covers_every_pair_exactly_once():
    labels = np.repeat(np.arange(4), [3, 1, 4, 2])
    sizes = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    same_per_class = sizes * (sizes - 1) // 2
    ends = np.repeat(starts + sizes, sizes)
    different_per_image = len(labels) - ends
    same = _same_pairs(np.arange(same_per_class.sum()), same_per_class, starts)
    different = _different_pairs(np.arange(different_per_image.sum()), different_per_image, ends)
    all_pairs = list(itertools.combinations(range(len(labels)), 2))
    assert sorted((a, b) for a, b, _ in same) == [(a, b) for a, b in all_pairs if labels[a] == labels[b]]
    assert sorted((a, b) for a, b, _ in different) == [(a, b) for a, b in all_pairs if labels[a] != labels[b]]
    drawn = draw_pairs(np.random.default_rng(0), labels, 20, "data")
    assert sum(issame for _, _, issame in drawn) == 10 and len({frozenset(p[:2]) for p in drawn}) == 20


def test_data_stats_counts_and_names_unreadable_files(tmp_path):
    data = str(tmp_path / "people")
    write_people(data)
    _write(os.path.join(data, "ann", "empty.jpg"), b"")
    _write(os.path.join(data, "dee", "cut.jpg"), _jpeg(3)[:150])
    stats = data_stats(data)
    assert (stats["identities"], stats["images"], stats["single_image_identities"]) == (5, 16, 1)
    assert stats["images_per_identity"] == {"min": 1, "median": 4.0, "max": 5, "mean": 3.2}
    unreadable = dict(stats["unreadable_files"])
    assert stats["unreadable"] == 2 and unreadable[os.path.join(data, "ann", "empty.jpg")] == "empty file (0 bytes)"
    assert unreadable[os.path.join(data, "dee", "cut.jpg")].startswith("cannot be decoded")
    text = format_data_stats(stats)
    assert "identities: 5 (1 with a single image)" in text and "cut.jpg: cannot be decoded" in text
    assert data_stats(data, decode=False)["unreadable"] == 1
