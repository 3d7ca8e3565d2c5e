"""Sub-center cleaning: the dominant sub-centre rule against NumPy loops, and the command on a trained tiny run."""
import csv
import math
import os

import numpy as np
import pytest

from recipes.commands.clean_subcenter import dominant_subcenter_cosines, find_subcenter_outliers


def reference_cosines(embeddings, labels, kernel, k):
    """insightface `drop.py`, one class at a time: vote, dominant = most votes, cosine to it."""
    weights = kernel.T / np.linalg.norm(kernel.T, axis=1, keepdims=True)
    weights = weights.reshape((-1, k, kernel.shape[0]))
    x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    cosine = np.zeros(len(labels))
    for wid in range(len(weights)):
        rows = np.where(labels == wid)[0]
        if not len(rows):
            continue
        subcenters = weights[wid]
        k_stat = np.zeros(k, dtype=int)
        for row in rows:
            k_stat[np.argmax(subcenters @ x[row])] += 1
        cosine[rows] = x[rows] @ subcenters[np.argmax(k_stat)]
    return cosine


@pytest.mark.parametrize("k", [1, 3])
def test_dominant_subcentre_cosines_match_drop_py(k):
    rng = np.random.default_rng(k)
    embeddings = rng.normal(size=(40, 6))
    labels = rng.integers(0, 4, size=40)  # class 4 has no images
    kernel = rng.normal(size=(6, 5 * k))
    cosine, dominant = dominant_subcenter_cosines(embeddings, labels, kernel, k)
    np.testing.assert_allclose(cosine, reference_cosines(embeddings, labels, kernel, k), atol=1e-12)
    assert dominant.shape == (5,) and dominant[4] == 0


def test_an_image_on_a_minority_subcentre_is_measured_against_the_dominant_one():
    # Class 0 has sub-centres e0, e1 (k = 2): two images near e0, one exactly at e1 → dominant e0, angle 90°.
    kernel = np.eye(2)  # columns: class 0's sub-centres e0, e1
    embeddings = np.array([[1.0, 0.1], [1.0, -0.1], [0.0, 2.0]])
    cosine, dominant = dominant_subcenter_cosines(embeddings, np.zeros(3, np.int64), kernel, 2)
    assert dominant.tolist() == [0]
    np.testing.assert_allclose(cosine, [1 / math.sqrt(1.01), 1 / math.sqrt(1.01), 0.0], atol=1e-12)


@pytest.mark.slow
def test_clean_subcenter_on_a_trained_run(tiny_faces, tiny_overrides, tmp_path):
    from recipes.commands.cli import CommandLine
    from recipes.resolve import resolve_recipe
    from recipes.train import train

    run_dir = train(resolve_recipe("subcenter_arcface", tiny_overrides))
    summary = find_subcenter_outliers(run_dir, threshold=75.0)
    with open(summary["out"]) as file:
        rows = list(csv.reader(file, delimiter="\t"))
    assert rows[0] == ["path", "identity", "angle_degrees"]
    assert summary["embedded"] == summary["images"] == 64 and len(rows) - 1 == summary["dropped"]
    assert all(float(angle) >= 75.0 for _, _, angle in rows[1:])

    # The clean folder holds exactly the images not listed; a smaller threshold drops more, 179.9° none.
    clean_dir = tmp_path / "clean"
    again = find_subcenter_outliers(run_dir, threshold=75.0, out=str(tmp_path / "again.tsv"), clean_dir=str(clean_dir))
    dropped = {row[0] for row in rows[1:]}
    kept = {os.path.relpath(os.path.join(root, name), clean_dir) for root, _, names in os.walk(clean_dir)
            for name in names}
    assert again["dropped"] == summary["dropped"] and not kept & dropped and len(kept | dropped) == 64
    assert all(os.path.islink(os.path.join(clean_dir, path)) for path in kept)
    assert find_subcenter_outliers(run_dir, threshold=1.0, out=str(tmp_path / "strict.tsv"))["dropped"] == 64
    assert find_subcenter_outliers(run_dir, threshold=179.9, out=str(tmp_path / "lenient.tsv"))["dropped"] == 0

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "file").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        find_subcenter_outliers(run_dir, out=str(tmp_path / "other.tsv"), clean_dir=str(occupied))
    CommandLine().clean_subcenter(run_dir, threshold=80, out=str(tmp_path / "cli.tsv"))
    assert os.path.isfile(tmp_path / "cli.tsv")


@pytest.mark.slow
def test_clean_subcenter_refuses_a_run_without_the_subcenter_head(tiny_overrides):
    from recipes.resolve import resolve_recipe
    from recipes.train import train

    run_dir = train(resolve_recipe("softmax", tiny_overrides))
    with pytest.raises(ValueError, match="subcenter"):
        find_subcenter_outliers(run_dir)
