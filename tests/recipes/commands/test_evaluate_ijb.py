"""`eval_ijb` end to end on a small IJB folder in insightface's layout: synthetic aligned faces enlarged 2× as loose
crops, the template points × 2 as landmarks, 3 identities × 2 templates × 2 medias × 2 images."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import backbones
from evaluation.ijb import ijb_verification
from data.align import align_face
from data.synthetic_ijb import make_synthetic_ijb
from recipes.commands.cli import main
from recipes.commands.evaluate_ijb import IjbFormatError, evaluate_ijb


@pytest.fixture(scope="module")
def ijb_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ijb")
    data = make_synthetic_ijb(str(root / "IJBC"), identities=3, templates=2, medias=2, images=2)
    embedder = backbones.build_embedding_model("tiny", embedding_size=16, image_size=112)
    model_path = str(root / "embedding.keras")
    embedder.save(model_path)
    return str(root / "IJBC"), model_path, embedder, data


def test_eval_ijb_end_to_end_equals_the_protocol_on_directly_embedded_faces(ijb_setup, tmp_path, capsys):
    ijb_dir, model_path, embedder, (faces, faceness, templates, medias, pairs) = ijb_setup
    out = str(tmp_path / "out")
    main(["eval_ijb", f"--model={model_path}", f"--ijb={ijb_dir}", "--subset=IJBC", "--batch_size=5", f"--out={out}"])
    printed = capsys.readouterr().out

    # The loose crops align back to the faces exactly (a 2x nearest enlargement halved by bilinear sampling).
    first_canvas = tf.io.decode_png(tf.io.read_file(os.path.join(ijb_dir, "loose_crop", "0.png"))).numpy()
    with open(os.path.join(ijb_dir, "meta", "ijbc_name_5pts_score.txt")) as file:
        first_points = np.array([float(value) for value in file.readline().split()[1:11]])
    np.testing.assert_array_equal(align_face(first_canvas, first_points), faces[0])

    plain = embedder(faces.astype(np.float32), training=False).numpy()
    flipped = embedder(faces[:, :, ::-1].astype(np.float32), training=False).numpy()
    expected = ijb_verification(plain + flipped, faceness, templates, medias, *pairs)
    scores = np.load(os.path.join(out, "ijbc_scores.npy"))
    np.testing.assert_allclose(scores, expected["scores"], atol=1e-5)

    with open(os.path.join(out, "ijbc_tar_at_far.json")) as file:
        table = json.load(file)
    assert list(table) == ["N0D0F0", "N0D0F1", "N0D1F0", "N0D1F1", "N1D0F0", "N1D0F1", "N1D1F0", "N1D1F1"]
    no_flip = ijb_verification(plain, faceness, templates, medias, *pairs, use_norm_score=False,
                               use_detector_score=False)
    assert table["N0D0F0"]["1e-01"] == pytest.approx(no_flip["tar_at_far"][1e-1])
    assert table["N1D1F1"]["1e-01"] == pytest.approx(expected["tar_at_far"][1e-1])
    rows = [line.split() for line in printed.splitlines() if line.startswith("N")]
    assert [row[0] for row in rows[:2]] == ["N1D1F1", "N1D1F0"] and len(rows) == 8
    assert rows[0][1:7] == [f"{100 * expected['tar_at_far'][far]:.2f}" for far in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)]
    assert os.path.getsize(os.path.join(out, "ijbc_roc.png")) > 10_000


def broken_copy(ijb_dir, tmp_path):
    import shutil

    copy = str(tmp_path / "IJBC")
    shutil.copytree(ijb_dir, copy)
    return copy


def test_a_missing_meta_file_is_named(ijb_setup, tmp_path):
    ijb_dir = broken_copy(ijb_setup[0], tmp_path)
    os.remove(os.path.join(ijb_dir, "meta", "ijbc_template_pair_label.txt"))
    with pytest.raises(FileNotFoundError, match=r"ijbc_template_pair_label.txt' does not exist.*insightface's layout"):
        evaluate_ijb(ijb_setup[1], ijb_dir, "IJBC", out_dir=str(tmp_path / "out"))


def test_an_absent_image_is_named(ijb_setup, tmp_path):
    ijb_dir = broken_copy(ijb_setup[0], tmp_path)
    os.remove(os.path.join(ijb_dir, "loose_crop", "3.png"))
    with pytest.raises(FileNotFoundError, match=r"1 of 24 images .* not in .*3\.png"):
        evaluate_ijb(ijb_setup[1], ijb_dir, "IJBC", out_dir=str(tmp_path / "out"))


def test_an_undecodable_image_is_named(ijb_setup, tmp_path):
    ijb_dir = broken_copy(ijb_setup[0], tmp_path)
    with open(os.path.join(ijb_dir, "loose_crop", "7.png"), "wb") as file:
        file.write(b"not an image at all")
    with pytest.raises(IjbFormatError, match=r"cannot be decoded \(.*7\.png: .*\); replace it"):
        evaluate_ijb(ijb_setup[1], ijb_dir, "IJBC", batch_size=4, out_dir=str(tmp_path / "out"))


def assert_second_line_refused(ijb_setup, tmp_path, meta_name, line, message):
    """Replace line 2 of meta file `meta_name` in a copy of the IJB folder; evaluation must refuse it with `message`."""
    ijb_dir = broken_copy(ijb_setup[0], tmp_path)
    path = os.path.join(ijb_dir, "meta", meta_name)
    with open(path) as file:
        lines = file.readlines()
    lines[1] = line
    with open(path, "w") as file:
        file.writelines(lines)
    with pytest.raises(IjbFormatError, match=message):
        evaluate_ijb(ijb_setup[1], ijb_dir, "IJBC", out_dir=str(tmp_path / "out"))


@pytest.mark.parametrize("line, message", [
    ("1.png 1 2 3 4 5 6 7 8 nine 10 0.9\n", r"line 2: cannot read the numbers"),
    ("1.png 1 2 3 0.9\n", r"line 2: expected 12 fields, got 5"),
    ("1.png 5 5 5 5 5 5 5 5 5 5 0.9\n", r"image '1.png' \(line 2 of the 5-point file\).*coincide"),
])
def test_unusable_landmarks_are_named_with_their_line(ijb_setup, tmp_path, line, message):
    assert_second_line_refused(ijb_setup, tmp_path, "ijbc_name_5pts_score.txt", line, message)


@pytest.mark.parametrize("line, message", [
    ("11 12 x\n", r"ijbc_template_pair_label.txt, line 2: cannot read the numbers in '11 12 x'"),
    ("11 12 2\n", r"labels must be 0 or 1, found \[0, 1, 2\]"),
])
def test_a_bad_pair_line_is_named(ijb_setup, tmp_path, line, message):
    assert_second_line_refused(ijb_setup, tmp_path, "ijbc_template_pair_label.txt", line, message)


@pytest.mark.slow
def test_eval_ijb_accepts_an_onnx_file_with_its_backbone(ijb_setup, tmp_path):
    onnx = pytest.importorskip("onnx")
    from backbones.onnx_model import import_onnx_model
    from benchmarks.onnx_graphs import mobilefacenet_graph

    ijb_dir, _, _, (faces, faceness, templates, medias, pairs) = ijb_setup
    onnx_path = str(tmp_path / "mbf.onnx")
    onnx.save(mobilefacenet_graph(image_size=112, fold=True), onnx_path)
    out = str(tmp_path / "out")
    main(["eval_ijb", f"--model={onnx_path}", "--backbone=mobilefacenet", f"--ijb={ijb_dir}", f"--out={out}"])
    imported = import_onnx_model(onnx_path, "mobilefacenet")
    plain = imported(faces.astype(np.float32), training=False).numpy()
    flipped = imported(faces[:, :, ::-1].astype(np.float32), training=False).numpy()
    expected = ijb_verification(plain + flipped, faceness, templates, medias, *pairs)
    np.testing.assert_allclose(np.load(os.path.join(out, "ijbc_scores.npy")), expected["scores"], atol=1e-5)
