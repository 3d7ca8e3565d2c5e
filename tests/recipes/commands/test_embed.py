"""`embed`: image + flip embeddings of every image of a folder or `.bin`, in row order, bad files skipped and named."""
import csv
import os
import shutil

import keras
import numpy as np
import pytest
from PIL import Image

from backbones.embedding import build_embedding_model
from data.bins import load_bin_images
from image_files import write_acceptance_folder
from recipes.commands.cli import main
from recipes.commands.embed import embed_data


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """An untrained tiny embedding model (16-d, 112x112) saved as .keras."""
    keras.utils.set_random_seed(5)
    path = str(tmp_path_factory.mktemp("model") / "embedding.keras")
    build_embedding_model("tiny", 16).save(path)
    return path


def _expected(model_path, images, flip=True):
    """embedder(images) (+ embedder(mirrored images)) with Keras predict, images uint8 (N, S, S, 3)."""
    model = keras.saving.load_model(model_path)
    images = np.asarray(images, np.float32)
    plain = model.predict(images, verbose=0)
    return plain + model.predict(images[:, :, ::-1], verbose=0) if flip else plain


def _pil_rgb(path):
    """The pixels of image file `path` as PIL (and OpenCV) decode them, RGB uint8."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _read_tsv(path):
    with open(path, newline="") as file:
        return list(csv.reader(file, delimiter="\t"))


def _copy_identities(tiny_faces, target, count=2):
    """Copy the first `count` identity folders of the synthetic training set into `target`; their sorted paths."""
    names = sorted(name for name in os.listdir(tiny_faces.train_dir) if not name.startswith("."))[:count]
    for name in names:
        shutil.copytree(os.path.join(tiny_faces.train_dir, name), os.path.join(target, name))
    return names, sorted(os.path.join(target, name, file) for name in names for file in os.listdir(target / name))


def test_identity_folders_with_one_truncated_file(tiny_faces, model_path, tmp_path, capsys):
    data = tmp_path / "data"
    names, good = _copy_identities(tiny_faces, data)
    with open(good[0], "rb") as file:
        encoded = file.read()
    bad = str(data / names[1] / "zz_truncated.jpg")
    with open(bad, "wb") as file:
        file.write(encoded[: len(encoded) // 3])
    out = str(tmp_path / "out" / "faces.npy")
    os.makedirs(os.path.dirname(out))
    result = embed_data(model_path, str(data), out, batch_size=5)
    assert result["rows"] == len(good) == 16 and result["skipped"] == 1 and result["dimension"] == 16
    assert f"skipping unreadable image {bad}" in capsys.readouterr().err
    rows = _read_tsv(str(tmp_path / "out" / "faces.tsv"))
    assert rows[0] == ["path", "identity"]
    assert [row[0] for row in rows[1:]] == good
    assert [row[1] for row in rows[1:]] == [os.path.basename(os.path.dirname(path)) for path in good]
    skipped = _read_tsv(str(tmp_path / "out" / "faces.skipped.tsv"))
    assert skipped[0] == ["path", "reason"] and [row[0] for row in skipped[1:]] == [bad]
    assert "cannot be decoded" in skipped[1][1]
    images = np.stack([_pil_rgb(path) for path in good])
    embeddings = np.load(out)
    assert embeddings.dtype == np.float32 and embeddings.shape == (16, 16)
    np.testing.assert_allclose(embeddings, _expected(model_path, images), rtol=1e-4, atol=1e-5)


def test_every_kind_of_bad_file_is_skipped_and_odd_images_are_embedded(model_path, tmp_path):
    bad = write_acceptance_folder(str(tmp_path / "data"))
    result = embed_data(model_path, str(tmp_path / "data"), str(tmp_path / "all.npy"))
    assert result["rows"] == 15 and result["skipped"] == 3
    paths = [row[0] for row in _read_tsv(str(tmp_path / "all.tsv"))[1:]]
    assert len(paths) == 15 and not set(paths) & bad
    assert {row[0] for row in _read_tsv(str(tmp_path / "all.skipped.tsv"))[1:]} == bad
    assert np.all(np.isfinite(np.load(tmp_path / "all.npy")))


def test_flat_folder_without_flip(tiny_faces, model_path, tmp_path):
    _, sources = _copy_identities(tiny_faces, tmp_path / "identities", count=1)
    flat = tmp_path / "flat"
    flat.mkdir()
    for number, source in enumerate(sources[:3]):
        shutil.copy(source, flat / f"face{number}.jpg")
    stale = tmp_path / "plain.skipped.tsv"
    stale.write_text("path\treason\nold\told\n")
    result = embed_data(model_path, str(flat), str(tmp_path / "plain.npy"), flip=False)
    assert result["rows"] == 3 and result["skipped"] == 0 and not stale.exists()
    rows = _read_tsv(str(tmp_path / "plain.tsv"))[1:]
    assert rows == [[str(flat / f"face{number}.jpg"), ""] for number in range(3)]
    images = np.stack([_pil_rgb(path) for path, _ in rows])
    np.testing.assert_allclose(np.load(tmp_path / "plain.npy"), _expected(model_path, images, flip=False),
                               rtol=1e-4, atol=1e-5)


def test_bin_rows_are_its_images_in_order_from_the_command_line(tiny_faces, model_path, tmp_path):
    main(["embed", f"--model={model_path}", f"--data={tiny_faces.bin_path}", f"--out={tmp_path / 'pairs.npy'}",
          "--batch_size=32", "--flip=false"])
    images, issame = load_bin_images(tiny_faces.bin_path)
    rows = _read_tsv(str(tmp_path / "pairs.tsv"))[1:]
    name = os.path.basename(tiny_faces.bin_path)
    assert [row[0] for row in rows] == [f"{name}#{index}" for index in range(2 * len(issame))]
    np.testing.assert_allclose(np.load(tmp_path / "pairs.npy"), _expected(model_path, images, flip=False),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arguments,message", [
    ({"out": "faces.txt"}, "must end with .npy"),
    ({"data": "missing-folder"}, "does not exist"),
    ({"batch_size": 0}, "positive integer"),
    ({"flip": "maybe"}, "--flip='maybe' must be true or false"),
])
def test_bad_arguments_are_clear_errors(model_path, tmp_path, arguments, message):
    arguments = {"data": str(tmp_path), "out": "faces.npy", **arguments}
    arguments["data"] = str(tmp_path / arguments["data"]) if arguments["data"] == "missing-folder" else arguments["data"]
    arguments["out"] = str(tmp_path / arguments["out"])
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        embed_data(model_path, **arguments)


def test_files_of_other_types_are_listed_and_odd_names_are_escaped_in_the_tsv(tiny_faces, model_path, tmp_path):
    _, sources = _copy_identities(tiny_faces, tmp_path / "identities", count=1)
    flat = tmp_path / "flat"
    flat.mkdir()
    odd = ["tab\there.jpg", "new\nline.jpg", "back\\slash.jpg"]
    for name, source in zip(odd, sources):
        shutil.copy(source, flat / name)
    (flat / "notes.txt").write_text("who is who\n")
    (flat / "face.bmp").write_bytes(b"BM" + bytes(60))
    (flat / ".hidden.txt").write_text("ignored\n")
    result = embed_data(model_path, str(flat), str(tmp_path / "odd.npy"))
    assert result["rows"] == 3 and result["skipped"] == 2
    with open(tmp_path / "odd.tsv", encoding="utf-8") as file:
        lines = file.read().split("\n")
    assert lines[0] == "path\tidentity" and lines[-1] == "" and len(lines) == 5  # header, 3 rows, end
    escaped = {name: name.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n") for name in odd}
    assert sorted(lines[1:4]) == sorted(f"{flat}{os.sep}{escaped[name]}\t" for name in odd)
    with open(tmp_path / "odd.skipped.tsv", encoding="utf-8") as file:
        skipped = [line.split("\t") for line in file.read().splitlines()[1:]]
    assert skipped == [[str(flat / "face.bmp"), "unsupported image type .bmp (JPEG and PNG only); convert it"],
                       [str(flat / "notes.txt"), "not an image file (extension .txt)"]]


def test_files_of_other_types_inside_identity_folders_are_listed(tiny_faces, model_path, tmp_path):
    names, good = _copy_identities(tiny_faces, tmp_path / "data", count=2)
    (tmp_path / "data" / names[1] / "scan.tif").write_bytes(b"II*\x00")
    (tmp_path / "data" / "README").write_text("two people\n")
    result = embed_data(model_path, str(tmp_path / "data"), str(tmp_path / "ids.npy"))
    assert result["rows"] == len(good) and result["skipped"] == 2
    reasons = dict(_read_tsv(str(tmp_path / "ids.skipped.tsv"))[1:])
    assert reasons == {str(tmp_path / "data" / "README"): "not an image file (extension none)",
                       str(tmp_path / "data" / names[1] / "scan.tif"):
                           "unsupported image type .tif (JPEG and PNG only); convert it"}
