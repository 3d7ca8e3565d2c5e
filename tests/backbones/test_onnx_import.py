"""ONNX import: embeddings equal onnxruntime's on the source graph; structural refusals name the first mismatch."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

from backbones.onnx_import import OnnxImportError, channels_last_rows, import_onnx_model  # noqa: E402
from benchmarks.onnx_graphs import iresnet_graph, mobilefacenet_graph  # noqa: E402

IMAGE_SIZE = 32
MAX_RELATIVE_ERROR = 1e-4


def save(model, tmp_path, name="model.onnx"):
    path = str(tmp_path / name)
    onnx.save(model, path)
    return path


def onnx_embeddings(path, images, normalise_inside):
    """onnxruntime on the graph: NCHW, insightface's (x − 127.5)/127.5 unless the graph normalises itself."""
    nchw = images.transpose(0, 3, 1, 2)
    inputs = nchw if normalise_inside else (nchw - 127.5) / 127.5
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {"data": inputs.astype(np.float32)})[0]


def relative_error(actual, expected):
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def images(count=3, seed=5):
    return np.random.default_rng(seed).uniform(0, 255, (count, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)


@pytest.mark.parametrize("fold", [False, True], ids=["bn_kept", "bn_folded"])
@pytest.mark.parametrize("normalise_inside", [False, True], ids=["outside", "sub_mul_inside"])
@pytest.mark.parametrize("backbone, graph", [("iresnet18", iresnet_graph), ("mobilefacenet", mobilefacenet_graph)])
def test_imported_model_embeds_like_onnxruntime(backbone, graph, fold, normalise_inside, tmp_path):
    path = save(graph(fold=fold, normalise_inside=normalise_inside, image_size=IMAGE_SIZE), tmp_path)
    model = import_onnx_model(path, backbone)
    assert model.input_shape == (None, IMAGE_SIZE, IMAGE_SIZE, 3) and model.output_shape == (None, 16)
    batch = images()
    expected = onnx_embeddings(path, batch, normalise_inside)
    actual = np.asarray(model(batch, training=False))
    assert relative_error(actual, expected) <= MAX_RELATIVE_ERROR


def test_imported_model_saves_and_loads_without_project_code(tmp_path):
    import keras

    model = import_onnx_model(save(mobilefacenet_graph(fold=True), tmp_path), "mobilefacenet")
    model.save(str(tmp_path / "imported.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "imported.keras"))
    batch = images(2)
    np.testing.assert_array_equal(np.asarray(loaded(batch, training=False)), np.asarray(model(batch, training=False)))


def test_iresnet18_graph_imported_as_iresnet50_names_the_first_mismatching_layer(tmp_path):
    path = save(iresnet_graph(fold=True), tmp_path)
    with pytest.raises(OnnxImportError) as caught:
        import_onnx_model(path, "iresnet50")
    message = str(caught.value)
    # iresnet18's first stage has 2 blocks, iresnet50's 3: the third block's first layer is missing.
    assert "'layer1_2_bn1'" in message and "first mismatch" in message and "model.onnx" in message


def test_wrong_embedding_width_is_refused_at_the_dense_layer(tmp_path):
    path = save(iresnet_graph(units=16), tmp_path)
    import backbones
    from backbones.onnx_import import load_onnx_weights

    model = backbones.build_embedding_model("iresnet18", embedding_size=8, image_size=IMAGE_SIZE)
    with pytest.raises(OnnxImportError, match="'fc'"):
        load_onnx_weights(model, path)


def test_input_mean_other_than_127_5_is_refused(tmp_path):
    model = iresnet_graph()
    sub = onnx.helper.make_node("Sub", ["data", "mean"], ["shifted"], name="mean_sub")
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(100.0, np.float32), "mean"))
    for node in model.graph.node:
        node.input[:] = ["shifted" if name == "data" else name for name in node.input]
    model.graph.node.insert(0, sub)
    with pytest.raises(OnnxImportError, match="mean"):
        import_onnx_model(save(model, tmp_path), "iresnet18")


def test_channels_last_rows_matches_a_transposed_flatten():
    rng = np.random.default_rng(0)
    feature_map = rng.normal(size=(2, 3, 4, 5))  # (B, h, w, c)
    weight = rng.normal(size=(5 * 3 * 4, 7))  # rows in PyTorch's (c, h, w) order
    torch_flat = feature_map.transpose(0, 3, 1, 2).reshape(2, -1)
    np.testing.assert_allclose(feature_map.reshape(2, -1) @ channels_last_rows(weight, (3, 4, 5)), torch_flat @ weight)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.onnx"):
        import_onnx_model(str(tmp_path / "absent.onnx"), "iresnet18")


def test_backbone_weights_onnx_loads_the_whole_embedding_model(tmp_path):
    import backbones

    path = save(iresnet_graph(fold=True), tmp_path)
    imported = import_onnx_model(path, "iresnet18")
    model = backbones.build_embedding_model("iresnet18", embedding_size=16, dropout=0.1, image_size=IMAGE_SIZE,
                                            backbone_weights=path)
    batch = images(2)
    np.testing.assert_array_equal(np.asarray(model(batch, training=False)), np.asarray(imported(batch, training=False)))


def test_import_model_command_saves_a_checked_keras_model(tmp_path, capsys):
    import keras

    from recipes.commands.cli import CommandLine

    path = save(mobilefacenet_graph(fold=True), tmp_path)
    out = str(tmp_path / "imported.keras")
    CommandLine().import_model(onnx=path, backbone="mobilefacenet", out=out)
    printed = capsys.readouterr().out
    error = float(printed.split("max relative difference to onnxruntime on 4 random images: ")[1].split()[0])
    assert error <= MAX_RELATIVE_ERROR
    loaded = keras.saving.load_model(out)
    batch = images(2)
    assert relative_error(np.asarray(loaded(batch, training=False)), onnx_embeddings(path, batch, False)) \
        <= MAX_RELATIVE_ERROR


def test_eval_accepts_an_onnx_file(tiny_faces, tmp_path):
    from recipes.commands.evaluate import evaluate_saved_model

    path = save(mobilefacenet_graph(), tmp_path)  # 32×32: the evaluation resizes the .bin images to the model
    with pytest.raises(ValueError, match="--backbone"):
        evaluate_saved_model(path, [tiny_faces.bin_path])
    results = evaluate_saved_model(path, [tiny_faces.bin_path], batch_size=32, backbone="mobilefacenet")
    (metrics,) = results.values()
    assert metrics is not None and 0.0 <= metrics["acc"] <= 1.0 and metrics["pairs"] == 60
