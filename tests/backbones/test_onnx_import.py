"""ONNX import of every released IResNet/MobileFaceNet variant: embeddings equal onnxruntime's on the source graph,
with and without --backbone; the variant is detected from the graph; refusals are one-line user errors."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

from backbones.onnx_graph import OnnxImportError, parse_onnx  # noqa: E402
from backbones.onnx_import import channels_last_rows, load_onnx_weights  # noqa: E402
from backbones.onnx_model import import_onnx_model  # noqa: E402
from backbones.onnx_variants import detect_variant  # noqa: E402
from benchmarks.onnx_graphs import iresnet_graph, mobilefacenet_graph, mxnet_iresnet_graph  # noqa: E402
from registry import UserError  # noqa: E402

IMAGE_SIZE = 32
MAX_RELATIVE_ERROR = 1e-4

# (graph, backbone and options the detection must find); each as its exporter writes it (benchmarks.onnx_graphs).
VARIANTS = {
    "iresnet18_torch2onnx_bn_kept": (lambda: iresnet_graph(), "iresnet18", {}),
    "iresnet18_bn_folded_sub_mul_inside": (lambda: iresnet_graph(fold=True, normalise_inside=True), "iresnet18", {}),
    "iresnet18_fp16_wrapper_opset9": (lambda: iresnet_graph(fold=True, fp16=True, opset=9), "iresnet18", {}),
    "mxnet_arcface_r18_v1": (lambda: mxnet_iresnet_graph(), "iresnet18", {}),
    "mbf_gdc_bn_kept": (lambda: mobilefacenet_graph(), "mobilefacenet", {}),
    "mbf_gdc_simplified_sub_mul": (lambda: mobilefacenet_graph(fold=True, simplified=True, normalise_inside=True,
                                                               opset=9), "mobilefacenet", {}),
    "mbf_2021_scale1": (lambda: mobilefacenet_graph(scale=1, fold=True), "mobilefacenet", {"scale": 1}),
    "mbf_large": (lambda: mobilefacenet_graph(scale=4, blocks=(2, 8, 12, 4), fold=True), "mobilefacenet",
                  {"scale": 4, "blocks": (2, 8, 12, 4)}),
    "w600k_mbf": (lambda: mobilefacenet_graph(embedding_block="pointwise_fc", fold=True), "mobilefacenet",
                  {"embedding_block": "pointwise_fc"}),
}


@pytest.fixture(scope="module")
def variant_files(tmp_path_factory):
    """{variant name: path of its ONNX file}, written once."""
    folder = tmp_path_factory.mktemp("onnx_variants")
    paths = {}
    for name, (graph, _, _) in VARIANTS.items():
        paths[name] = str(folder / f"{name}.onnx")
        onnx.save(graph(), paths[name])
    return paths


def save(model, tmp_path, name="model.onnx"):
    path = str(tmp_path / name)
    onnx.save(model, path)
    return path


def onnxruntime_embeddings(path, images):
    """onnxruntime on the file, fed as insightface feeds it: NCHW, (x − 127.5)/127.5 unless the graph has Sub/Mul."""
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    nodes = [node.op_type for node in onnx.load(path).graph.node[:8]]
    nchw = images.transpose(0, 3, 1, 2)
    inputs = nchw if "Sub" in nodes and "Mul" in nodes else (nchw - 127.5) / 127.5
    return session.run(None, {session.get_inputs()[0].name: inputs.astype(np.float32)})[0]


def relative_error(actual, expected):
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def images(count=3, seed=5):
    return np.random.default_rng(seed).uniform(0, 255, (count, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_is_detected_from_the_graph(variant_files, name):
    _, backbone, options = VARIANTS[name]
    variant = detect_variant(parse_onnx(variant_files[name]))
    assert (variant.backbone, variant.options, variant.image_size) == (backbone, options, IMAGE_SIZE)
    assert variant.flags().startswith(f"--backbone={backbone}")


@pytest.mark.parametrize("name", [name for name in VARIANTS if name != "mbf_large"])  # mbf_large: the command test
def test_imported_variant_embeds_like_onnxruntime_without_backbone(variant_files, name):
    model = import_onnx_model(variant_files[name])
    assert model.input_shape == (None, IMAGE_SIZE, IMAGE_SIZE, 3) and model.output_shape == (None, 16)
    batch = images()
    assert relative_error(np.asarray(model(batch, training=False)),
                          onnxruntime_embeddings(variant_files[name], batch)) <= MAX_RELATIVE_ERROR


@pytest.mark.parametrize("name", ["w600k_mbf", "mxnet_arcface_r18_v1"])
def test_imported_variant_embeds_like_onnxruntime_with_backbone(variant_files, name):
    """`--backbone=mobilefacenet` (the family) is enough: the file's options complete it."""
    model = import_onnx_model(variant_files[name], VARIANTS[name][1])
    batch = images(2)
    assert relative_error(np.asarray(model(batch, training=False)),
                          onnxruntime_embeddings(variant_files[name], batch)) <= MAX_RELATIVE_ERROR


def test_imported_model_saves_and_loads_without_project_code(variant_files, tmp_path):
    import keras

    model = import_onnx_model(variant_files["w600k_mbf"])
    model.save(str(tmp_path / "imported.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "imported.keras"))
    batch = images(2)
    np.testing.assert_array_equal(np.asarray(loaded(batch, training=False)), np.asarray(model(batch, training=False)))


def test_iresnet18_graph_imported_as_iresnet50_names_the_first_mismatching_layer(variant_files):
    with pytest.raises(OnnxImportError) as caught:
        import_onnx_model(variant_files["iresnet18_torch2onnx_bn_kept"], "iresnet50")
    message = str(caught.value)
    # iresnet18's first stage has 2 blocks, iresnet50's 3: the third block's first layer is missing.
    assert "first mismatch at layer 'layer1_2_bn1'" in message and "iresnet18_torch2onnx_bn_kept.onnx" in message
    assert "import it with --backbone=iresnet18" in message and "\n" not in message


def test_an_option_against_the_file_is_refused(variant_files):
    with pytest.raises(OnnxImportError, match=r"--backbone_args.embedding_block='gdc', but .* set it to "
                                              r"'pointwise_fc'"):
        import_onnx_model(variant_files["w600k_mbf"], "mobilefacenet", backbone_args={"embedding_block": "gdc"})


def test_last_projection_as_1x1_convolution_is_refused_with_what_it_is(tmp_path):
    """A MobileFaceNet whose GDC ends in a 1×1 conv instead of a fully connected layer: refused, and said so."""
    model = mobilefacenet_graph(fold=True)
    graph = model.graph
    matmul = next(node for node in graph.node if node.op_type == "MatMul")
    weight = next(tensor for tensor in graph.initializer if tensor.name == matmul.input[1])
    kernel = onnx.numpy_helper.to_array(weight).T.reshape(16, 512, 1, 1)
    graph.initializer.append(onnx.numpy_helper.from_array(kernel, "projection"))
    reshape = next(node for node in graph.node if node.op_type == "Reshape")
    flat = reshape.output[0]
    reshape.output[0] = "map"
    projection = onnx.helper.make_node("Conv", [reshape.input[0], "projection"], ["projected"], kernel_shape=[1, 1],
                                       name="conv_6_projection")
    flatten = onnx.helper.make_node("Flatten", ["projected"], [matmul.output[0]], axis=1)
    index = list(graph.node).index(matmul)
    graph.node.remove(matmul)
    graph.node.insert(index, flatten)
    graph.node.insert(index, projection)
    del flat
    path = save(model, tmp_path)
    with pytest.raises(OnnxImportError, match="its last projection is a 1×1 convolution, not a fully connected "
                                              "layer; node .* 'conv_6_projection'") as caught:
        import_onnx_model(path)
    assert "\n" not in str(caught.value)


def test_unregistered_iresnet_depth_is_refused_naming_the_registered_ones(tmp_path):
    path = save(iresnet_graph(blocks_per_stage=(1, 1, 1, 1)), tmp_path)
    with pytest.raises(OnnxImportError, match=r"an IResNet with \(1, 1, 1, 1\) blocks per stage, which no registered "
                                              r"IResNet has \(iresnet18 \(2, 2, 2, 2\)"):
        import_onnx_model(path)


def test_wrong_embedding_width_is_refused_at_the_dense_layer(variant_files):
    import backbones

    model = backbones.build_embedding_model("iresnet18", embedding_size=8, image_size=IMAGE_SIZE)
    with pytest.raises(OnnxImportError, match=r"layer 'fc' \(step 69\): this backbone has a fully connected layer "
                                              r"2048→8 with bias there, the ONNX graph has a fully connected layer "
                                              r"2048→16 with bias \(node 69 \(Gemm 'Gemm_222'\)\)\.$"):
        load_onnx_weights(model, parse_onnx(variant_files["iresnet18_torch2onnx_bn_kept"]), "iresnet18")


def test_input_mean_other_than_127_5_is_refused(tmp_path):
    model = iresnet_graph()
    sub = onnx.helper.make_node("Sub", ["data", "mean"], ["shifted"], name="mean_sub")
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(100.0, np.float32), "mean"))
    for node in model.graph.node:
        node.input[:] = ["shifted" if name == "data" else name for name in node.input]
    model.graph.node.insert(0, sub)
    with pytest.raises(OnnxImportError, match="mean"):
        import_onnx_model(save(model, tmp_path), "iresnet18")


@pytest.mark.parametrize("content, message", [
    (lambda whole: whole[:len(whole) // 2], "truncated"),
    (lambda whole: b"PK\x03\x04 a zip archive, not a model" * 10, "not an ONNX model"),
    (lambda whole: b"", "not an ONNX model"),
], ids=["truncated", "not_onnx", "empty"])
def test_a_damaged_or_foreign_file_is_a_user_error(variant_files, tmp_path, content, message):
    with open(variant_files["mbf_2021_scale1"], "rb") as file:
        whole = file.read()
    path = tmp_path / "bad.onnx"
    path.write_bytes(content(whole))
    with pytest.raises(OnnxImportError, match=message) as caught:
        import_onnx_model(str(path))
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)


def test_channels_last_rows_matches_a_transposed_flatten():
    rng = np.random.default_rng(0)
    feature_map = rng.normal(size=(2, 3, 4, 5))  # (B, h, w, c)
    weight = rng.normal(size=(5 * 3 * 4, 7))  # rows in PyTorch's (c, h, w) order
    torch_flat = feature_map.transpose(0, 3, 1, 2).reshape(2, -1)
    np.testing.assert_allclose(feature_map.reshape(2, -1) @ channels_last_rows(weight, (3, 4, 5)), torch_flat @ weight)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.onnx"):
        import_onnx_model(str(tmp_path / "absent.onnx"), "iresnet18")


def test_backbone_weights_onnx_loads_the_whole_embedding_model_with_the_files_options(variant_files):
    import backbones

    path = variant_files["w600k_mbf"]
    imported = import_onnx_model(path)
    model = backbones.build_embedding_model("mobilefacenet", embedding_size=16, dropout=0.1, image_size=IMAGE_SIZE,
                                            backbone_weights=path)
    assert model.get_layer("pointwise_fc").use_bias
    batch = images(2)
    np.testing.assert_array_equal(np.asarray(model(batch, training=False)), np.asarray(imported(batch, training=False)))


@pytest.mark.slow
def test_import_model_command_says_what_it_found_and_saves_a_checked_model(variant_files, tmp_path, capsys):
    import keras

    from recipes.commands.cli import CommandLine

    path = variant_files["mbf_large"]
    out = str(tmp_path / "imported.keras")
    CommandLine().import_model(onnx=path, out=out)
    printed = capsys.readouterr().out
    assert printed.startswith("found: MobileFaceNet (scale 4: width 256; blocks (2, 8, 12, 4))")
    assert f"--backbone=mobilefacenet --backbone_args.scale=4 --backbone_args.blocks=[2,8,12,4] " \
           f"--backbone_weights={path}" in printed
    error = float(printed.split("max relative difference to onnxruntime on 4 random images: ")[1].split()[0])
    assert error <= MAX_RELATIVE_ERROR
    loaded = keras.saving.load_model(out)
    batch = images(2)
    assert relative_error(np.asarray(loaded(batch, training=False)), onnxruntime_embeddings(path, batch)) \
        <= MAX_RELATIVE_ERROR


def test_refused_import_exits_2_with_one_line(variant_files, tmp_path, capsys):
    from recipes.commands.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["import_model", f"--onnx={variant_files['iresnet18_torch2onnx_bn_kept']}", "--backbone=mobilefacenet",
              f"--out={tmp_path / 'x.keras'}"])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and error.startswith("error: ") and error.count("\n") == 1
    assert "first mismatch at layer 'layers0_conv'" in error and not (tmp_path / "x.keras").exists()


@pytest.mark.slow
def test_eval_accepts_an_onnx_file_without_backbone(variant_files, tiny_faces):
    from recipes.commands.evaluate import evaluate_saved_model

    # 32×32 graph: the evaluation resizes the .bin images to the model.
    results = evaluate_saved_model(variant_files["mxnet_arcface_r18_v1"], [tiny_faces.bin_path], batch_size=32)
    (metrics,) = results.values()
    assert metrics is not None and 0.0 <= metrics["acc"] <= 1.0 and metrics["pairs"] == 60
