"""Export of a trained tiny run to SavedModel, ONNX and TFLite: each checked with its own runtime against Keras."""
import configparser
import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import recipes  # noqa: F401
from backbones.embedding import build_embedding_model
from storage.history import read_history
from data.synthetic import render_identity
from recipes.commands import export as export_module
from recipes.commands.cli import main
from recipes.commands.export import ExportError, export_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(scope="module")
def faces():
    """Five real-looking faces of two identities (not the export's own probe identities), float32 0..255."""
    return np.concatenate([render_identity(101, 3), render_identity(202, 2)]).astype(np.float32)


def _keras_embeddings(path, images):
    return keras.saving.load_model(path).predict(images, verbose=0)


def _run_saved_model(path, images):
    loaded = tf.saved_model.load(path)  # kept in a variable: the signature needs its variables alive
    return loaded.serve(tf.constant(images)).numpy()


def _run_onnx(path, images):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def _run_tflite(path, images):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(given["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(taken["index"])


RUNNERS = {"saved_model": _run_saved_model, "onnx": _run_onnx, "tflite": _run_tflite}


@pytest.mark.parametrize("format_name,precision", [
    ("saved_model", "float32"), ("onnx", "float32"), ("tflite", "float32"), ("tflite", "float16")])
@pytest.mark.slow
def test_exported_model_computes_the_keras_embeddings_in_its_own_runtime(softmax_run, faces, tmp_path, format_name,
                                                                         precision):
    name = {"saved_model": "sm", "onnx": "face.onnx", "tflite": "face.tflite"}[format_name]
    result = export_model(softmax_run, format_name, str(tmp_path / name), precision=precision)
    expected = _keras_embeddings(os.path.join(softmax_run, "best_embedding.keras"), faces)
    for images, reference in ((faces, expected), (faces[:1], expected[:1])):  # dynamic batch: 5, then 1
        got = RUNNERS[format_name](str(tmp_path / name), images)
        assert got.shape == reference.shape == (len(images), 16) and got.dtype == np.float32
        if precision == "float32":
            relative = np.linalg.norm(got - reference, axis=1) / np.linalg.norm(reference, axis=1)
            assert relative.max() <= 1e-4
        else:
            cosine = np.sum(got * reference, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
            assert cosine.min() >= 0.999
    with open(tmp_path / "model_card.json") as file:
        entry = json.load(file)["exports"][name]
    assert entry["format"] == format_name and entry["precision"] == precision and entry["batch"] == "dynamic"
    assert entry["parity"]["images"] == 8 and result["parity"] == entry["parity"]
    if precision == "float32":
        assert entry["parity"]["max_relative_error"] <= 1e-4
    assert entry["parity"]["min_cosine"] >= 0.999


def test_model_card_describes_the_run(softmax_run, tmp_path):
    export_model(softmax_run, "saved_model", str(tmp_path / "sm"))
    export_model(softmax_run, "onnx", str(tmp_path / "face.onnx"))
    with open(tmp_path / "model_card.json") as file:
        card = json.load(file)
    with open(os.path.join(softmax_run, "recipe.json")) as file:
        recipe = json.load(file)
    assert sorted(card["exports"]) == ["face.onnx", "sm"]
    assert card["input"]["shape"] == [None, 112, 112, 3] and card["input"]["channels"] == "RGB"
    assert card["input"]["range"] == [0.0, 255.0] and card["input"]["normalisation"].endswith("(x - 127.5) / 128")
    assert card["embedding_size"] == 16 and card["output"]["shape"] == [None, 16]
    assert card["recipe"] == recipe
    assert card["training_data"]["num_classes"] == 8 and card["training_data"]["num_images"] == 64
    rows = {row["epoch"]: row for row in read_history(os.path.join(softmax_run, "history.jsonl"))}
    verification = card["verification"]
    assert verification["monitor"] == "verify/acc" and verification["best_epoch"] == verification["last_epoch"] == 1
    assert verification["best"]["verify/acc"] == rows[1]["verify/acc"] and "verify/xnorm" in verification["last"]
    assert "loss" not in verification["best"]
    if 0 in rows:  # the untrained baseline row
        assert verification["before_training"]["verify/acc"] == rows[0]["verify/acc"]
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    assert card["project"]["version"] == config.get("metadata", "version")
    commit = card["project"]["git_commit"]
    assert (commit is None and card["project"]["git_dirty"] is None) or re.fullmatch(r"[0-9a-f]{40}", commit)
    assert card["source"]["model"] == os.path.abspath(os.path.join(softmax_run, "best_embedding.keras"))


def test_a_training_model_is_reduced_to_its_embedding_model(softmax_run, faces, tmp_path):
    export_model(os.path.join(softmax_run, "model.keras"), "onnx", str(tmp_path / "face.onnx"))
    expected = keras.saving.load_model(os.path.join(softmax_run, "model.keras")).embedder.predict(faces, verbose=0)
    got = _run_onnx(str(tmp_path / "face.onnx"), faces)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_fixed_batch_tflite_has_that_input_shape(softmax_run, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    result = export_model(softmax_run, "tflite", str(tmp_path / "one.tflite"), batch=1)
    assert result["batch"] == 1 and result["parity"]["images"] == 1
    (given,) = Interpreter(model_path=str(tmp_path / "one.tflite")).get_input_details()
    assert given["shape"].tolist() == [1, 112, 112, 3] and given["shape_signature"].tolist() == [1, 112, 112, 3]
    assert given["dtype"] == np.float32


def test_mixed_precision_model_is_exported_in_float32(faces, tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = build_embedding_model("tiny", 16)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mixed.save(tmp_path / "mixed.keras")
    result = export_model(str(tmp_path / "mixed.keras"), "onnx", str(tmp_path / "mixed.onnx"))
    import onnx

    graph = onnx.load(str(tmp_path / "mixed.onnx")).graph
    assert {value.type.tensor_type.elem_type for value in [*graph.input, *graph.output]} == {onnx.TensorProto.FLOAT}
    assert not any(initializer.data_type == onnx.TensorProto.BFLOAT16 for initializer in graph.initializer)
    rebuilt = build_embedding_model("tiny", 16)
    rebuilt.set_weights(mixed.get_weights())
    float32_reference = rebuilt.predict(faces, verbose=0)
    got = _run_onnx(str(tmp_path / "mixed.onnx"), faces)
    np.testing.assert_allclose(got, float32_reference, rtol=1e-4, atol=1e-5)
    bfloat16 = mixed.predict(faces, verbose=0)
    assert not np.allclose(bfloat16, float32_reference, rtol=1e-4, atol=1e-5)  # the export is not the bf16 model
    with open(tmp_path / "model_card.json") as file:
        card = json.load(file)
    assert "mixed_bfloat16" in card["source"]["dtype_policy"] and result["precision"] == "float32"
    assert card["recipe"] is None and card["verification"] is None


def test_failed_parity_check_leaves_the_old_export_in_place(softmax_run, tmp_path, monkeypatch):
    target = tmp_path / "face.onnx"
    target.write_bytes(b"previous export")
    monkeypatch.setattr(export_module, "FLOAT32_MAX_RELATIVE_ERROR", -1.0)
    with pytest.raises(ExportError, match="differs from the Keras model"):
        export_model(softmax_run, "onnx", str(target))
    assert target.read_bytes() == b"previous export"
    assert sorted(os.listdir(tmp_path)) == ["face.onnx"]


@pytest.mark.parametrize("arguments,message", [
    ({"format_name": "onnx", "precision": "float16"}, "only available for --format=tflite"),
    ({"format_name": "onnx", "out": "model.tflite"}, "must end with .onnx"),
    ({"format_name": "torchscript"}, "is not one of saved_model, onnx, tflite"),
    ({"format_name": "tflite", "batch": 0}, "'dynamic' or a positive integer"),
])
def test_bad_options_are_clear_errors(softmax_run, tmp_path, arguments, message):
    arguments = {"out": None, **arguments}
    if arguments["out"]:
        arguments["out"] = str(tmp_path / arguments["out"])
    with pytest.raises(ExportError, match=message):
        export_model(softmax_run, **arguments)


def test_a_folder_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither best_embedding.keras nor embedding.keras"):
        export_model(str(tmp_path), "onnx")


def test_missing_onnx_packages_name_the_export_extra(softmax_run, tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "tf2onnx" else
                        real_find_spec(name, *args))
    with pytest.raises(ExportError, match=r"needs tf2onnx.*pip install -e '\.\[export\]'"):
        export_model(softmax_run, "onnx", str(tmp_path / "face.onnx"))
    assert not os.path.exists(tmp_path / "face.onnx")


def test_export_command_writes_into_the_run_folder_by_default(softmax_run_copy, capsys):
    main(["export", f"--model={softmax_run_copy}", "--format=onnx"])
    printed = capsys.readouterr().out
    assert os.path.isfile(os.path.join(softmax_run_copy, "export", "embedding.onnx"))
    assert os.path.isfile(os.path.join(softmax_run_copy, "export", "model_card.json"))
    assert "max relative error" in printed and "RGB NHWC float32 0..255" in printed
    with pytest.raises(SystemExit) as stopped:
        main(["export", f"--model={softmax_run_copy}", "--format=onnx", "--precision=float16"])
    assert stopped.value.code == 2 and "only available for --format=tflite" in capsys.readouterr().err


def test_verification_summary_picks_the_best_trained_epoch_of_the_monitor(tmp_path):
    from recipes.commands.model_card import verification_summary

    rows = [{"epoch": 0, "lfw/acc": 0.99, "agedb_30/acc": 0.9},  # baseline: never the best epoch
            {"epoch": 1, "loss": 3.0, "lfw/acc": 0.7, "agedb_30/acc": 0.6},
            {"epoch": 2, "loss": 2.0, "lfw/acc": 0.8, "agedb_30/acc": 0.75},
            {"epoch": 3, "loss": 1.0, "lfw/acc": 0.85, "agedb_30/acc": 0.7}]
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = {"eval_monitor": None, "eval_bins_resolved": ["/data/lfw.bin", "/data/agedb_30.bin"]}
    summary = verification_summary(str(tmp_path), recipe)
    assert summary["monitor"] == "agedb_30/acc" and summary["best_epoch"] == 2 and summary["last_epoch"] == 3
    assert summary["best"] == {"lfw/acc": 0.8, "agedb_30/acc": 0.75}
    assert summary["before_training"] == {"lfw/acc": 0.99, "agedb_30/acc": 0.9}
    assert verification_summary(str(tmp_path), {**recipe, "eval_monitor": "lfw/acc"})["best_epoch"] == 3


def test_insightface_layout_is_routed_to_arcface_and_get_feat_equals_embed(softmax_run, tmp_path):
    """insightface's model_zoo rules route the export to ArcFaceONNX; get_feat on BGR crops = `embed --flip=false`."""
    from PIL import Image

    from insightface_reference import ArcFaceOnnx, cosines, imread_bgr, route
    from recipes.commands.embed import embed_data

    out = str(tmp_path / "insightface.onnx")
    result = export_model(softmax_run, "onnx", out, layout="insightface")
    assert result["layout"] == "insightface" and result["parity"]["max_relative_error"] <= 1e-4
    assert result["input"]["shape"] == [None, 3, 112, 112] and result["input"]["layout"] == "NCHW"
    assert route(out) == "ArcFaceONNX"
    arcface = ArcFaceOnnx(out)
    assert (arcface.input_mean, arcface.input_std, arcface.input_size) == (127.5, 127.5, (112, 112))
    os.makedirs(tmp_path / "faces" / "a")
    for index, face in enumerate(np.concatenate([render_identity(5, 2), render_identity(6, 2)])):
        Image.fromarray(face).save(tmp_path / "faces" / "a" / f"{index}.jpg", quality=90)
    embedded = embed_data(softmax_run, str(tmp_path / "faces"), str(tmp_path / "e.npy"), flip=False)
    with open(embedded["tsv"]) as file:
        paths = [line.split("\t")[0] for line in file.read().splitlines()[1:]]
    theirs = arcface.get_feat([imread_bgr(path) for path in paths])
    assert cosines(np.load(embedded["out"]), theirs).min() >= 0.99999


@pytest.mark.parametrize("arguments, message", [
    ({"format_name": "tflite", "layout": "insightface"}, "is an ONNX layout"),
    ({"format_name": "onnx", "layout": "nchw"}, "is not one of nhwc, insightface"),
])
def test_insightface_layout_refusals(softmax_run, arguments, message):
    with pytest.raises(ExportError, match=message):
        export_model(softmax_run, **arguments)


def test_insightface_layout_refuses_sizes_insightface_routes_elsewhere(tmp_path):
    from recipes.commands.insightface_layout import InsightfaceLayoutError

    build_embedding_model("tiny", 8, image_size=96).save(tmp_path / "small.keras")
    with pytest.raises(InsightfaceLayoutError, match="96×96, which insightface's model_zoo.get_model routes to "
                                                     "Attribute"):
        export_model(str(tmp_path / "small.keras"), "onnx", str(tmp_path / "small.onnx"), layout="insightface")
    assert not os.path.exists(tmp_path / "small.onnx")
