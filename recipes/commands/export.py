"""Export an embedding model to SavedModel, ONNX or TFLite (LiteRT), verified against Keras, with a model card.

Wraps Keras 3's `Model.export(filepath, format="tf_saved_model" | "onnx" | "litert")` (ONNX goes
through `tf2onnx`, TFLite through `tf.lite.TFLiteConverter` on a SavedModel). The exported model
takes RGB NHWC float32 images in 0..255 at the training size (the `(x − 127.5) / 128`
normalisation stays inside) and returns the raw embedding (B, d). Before it replaces anything at
`out`, the exported file is run with its own runtime (`recipes.commands.runtimes`) on real-looking
synthetic faces and compared with the float32 Keras model: float32 exports must agree to a
per-image relative error ‖exported − keras‖ / ‖keras‖ ≤ 1e-4; float16 TFLite to a per-image cosine
similarity ≥ 0.999. A failing export raises `ExportError` and leaves `out` as it was.

Sources (Keras 3.15): `keras/src/export/onnx.py` (tf2onnx `convert.from_function`, patched by
`tf2onnx_lib.patch_tf2onnx` for numpy 2), `keras/src/export/litert.py` (extra keyword arguments are
set on the `TFLiteConverter`: float16 is `optimizations=[Optimize.DEFAULT]` with
`target_spec.supported_types=[float16]`, i.e. float16 weights, float32 input and output).
tf2onnx must be >= 1.17: 1.16.1 pins protobuf ~= 3.20, which TensorFlow 2.21 cannot use.
"""
import os
import warnings

import keras
import numpy as np

from storage.atomic import atomic_write, atomic_write_directory, unwritable_reason
from storage.model_files import run_model_file
from storage.run_folder import RunFolder
from recipes.commands.evaluate import load_embedding_model
from recipes.commands.insightface_layout import check_insightface_routing, insightface_blob, insightface_model
from recipes.commands.model_card import source_card, write_model_card
from recipes.commands.runtimes import load_runtime, require_onnx_packages
from registry import MissingFileError, UserError

FORMATS = {"saved_model": "tf_saved_model", "onnx": "onnx", "tflite": "litert"}
LAYOUTS = ("nhwc", "insightface")
DEFAULT_NAMES = {"saved_model": "saved_model", "onnx": "embedding.onnx", "tflite": "embedding.tflite"}
PRECISIONS = ("float32", "float16")
FLOAT32_MAX_RELATIVE_ERROR = 1e-4
FLOAT16_MIN_COSINE = 0.999
PROBE_IMAGES = 8


class ExportError(UserError, ValueError):
    """An export that cannot be made or that does not compute what the Keras model computes."""


def find_model_file(model):
    """(`.keras` path, run folder or None) of `--model`: a run folder (its best_embedding.keras, else
    embedding.keras) or a `.keras` file (its folder is the run folder if it holds a recipe.json)."""
    model = os.fspath(model)
    if os.path.isdir(model):
        return run_model_file(model), model if os.path.isfile(RunFolder(model).recipe_path) else None
    if not os.path.isfile(model):
        raise MissingFileError(f"model {model!r} does not exist; pass a run folder or a .keras file written by a run.")
    if not model.endswith(".keras"):
        raise ExportError(f"model {model!r} is not a .keras file; pass a run folder or a .keras file written by a run.")
    folder = os.path.dirname(os.path.abspath(model))
    return model, folder if os.path.isfile(RunFolder(folder).recipe_path) else None


def float32_model(model):
    """`model` itself if every layer computes in float32, else a float32 rebuild with the same weights.

    Mixed-precision (float16/bfloat16) layers are recreated from their config with
    `dtype="float32"` (recursively through nested models) and the weights copied over, since
    Keras' ONNX export needs a float32 policy and deployed runtimes expect float32.
    """
    if all(layer.dtype_policy.name == "float32" for layer in model._flatten_layers()):
        return model

    def as_float32(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    rebuilt = keras.models.clone_model(model, clone_function=as_float32, recursive=True)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def probe_faces(image_size, count=PROBE_IMAGES):
    """`count` real-looking synthetic faces (two identities) as float32 (count, S, S, 3) in 0..255."""
    from data.synthetic import render_identity

    counts = {7: count // 2, 11: count - count // 2}
    faces = [render_identity(seed, number, image_size) for seed, number in counts.items() if number]
    return np.concatenate(faces).astype(np.float32)


def compare_embeddings(exported, expected):
    """{"max_relative_error": max_i ‖a_i − b_i‖ / ‖b_i‖, "min_cosine": min_i cos(a_i, b_i)} of (N, d) arrays."""
    exported, expected = np.asarray(exported, np.float64), np.asarray(expected, np.float64)
    difference = np.linalg.norm(exported - expected, axis=1)
    norms = np.linalg.norm(expected, axis=1)
    cosine = np.sum(exported * expected, axis=1) / (np.linalg.norm(exported, axis=1) * norms)
    return {"max_relative_error": float(np.max(difference / norms)), "min_cosine": float(np.min(cosine))}


def check_parity(path, format_name, precision, images, expected):
    """Run the export at `path` with its runtime on `images`; the comparison dict, or raise ExportError."""
    runtime = load_runtime(path, format_name)
    got = runtime(images)
    if got.shape != expected.shape:
        raise ExportError(f"the exported {format_name} model returns shape {got.shape}, the Keras model "
                          f"{expected.shape}; the export is broken.")
    parity = {**compare_embeddings(got, expected), "images": len(images), "runtime": type(runtime).__name__,
              "input_name": runtime.input_name, "output_name": runtime.output_name}
    if precision == "float32" and not parity["max_relative_error"] <= FLOAT32_MAX_RELATIVE_ERROR:
        raise ExportError(f"the exported {format_name} model differs from the Keras model: relative error "
                          f"{parity['max_relative_error']:.3g} > {FLOAT32_MAX_RELATIVE_ERROR:g}; not written.")
    if precision == "float16" and not parity["min_cosine"] >= FLOAT16_MIN_COSINE:
        raise ExportError(f"the float16 {format_name} model differs from the Keras model: cosine similarity "
                          f"{parity['min_cosine']:.5f} < {FLOAT16_MIN_COSINE}; export float32 instead.")
    return parity


def _make_readable(path):
    """Let every user read the export (temporary files are created owner-only): files 0644, folders 0755."""
    os.chmod(path, 0o755 if os.path.isdir(path) else 0o644)
    for folder, names, files in os.walk(path):
        for name in names:
            os.chmod(os.path.join(folder, name), 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


def _options(format_name, out, batch, precision, layout):
    """Validated (out path, batch size or None for dynamic, precision)."""
    if format_name not in FORMATS:
        raise ExportError(f"--format={format_name!r} is not one of {', '.join(FORMATS)}.")
    if layout not in LAYOUTS:
        raise ExportError(f"--layout={layout!r} is not one of {', '.join(LAYOUTS)}.")
    if layout == "insightface" and format_name != "onnx":
        raise ExportError(f"--layout=insightface is an ONNX layout (insightface loads .onnx files); not for "
                          f"--format={format_name}.")
    if precision not in PRECISIONS:
        raise ExportError(f"--precision={precision!r} is not one of {', '.join(PRECISIONS)}.")
    if precision == "float16" and format_name != "tflite":
        raise ExportError(f"--precision=float16 is only available for --format=tflite, not {format_name}.")
    if batch in (None, "dynamic"):
        batch = None
    elif isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ExportError(f"--batch={batch!r} must be 'dynamic' or a positive integer (a fixed batch size).")
    suffix = {"onnx": ".onnx", "tflite": ".tflite"}.get(format_name)
    if suffix and not out.endswith(suffix):
        raise ExportError(f"--out={out!r} must end with {suffix} for --format={format_name}.")
    if format_name == "saved_model" and os.path.isfile(out):
        raise ExportError(f"--out={out!r} is a file; a SavedModel is a folder, pass a folder path.")
    problem = unwritable_reason(os.path.dirname(os.path.abspath(out)))
    if problem:
        raise ExportError(f"--out={out!r} cannot be written: {problem}; pass an --out in a writable folder.")
    return out, batch, precision


def export_model(model, format_name="onnx", out=None, batch="dynamic", precision="float32", layout="nhwc"):
    """Export `model` (run folder or `.keras`) to `out` (default: RUN/export/<name>); returns the export facts.

    The facts (also in `model_card.json` beside `out`) hold the format, precision, input batch,
    layout and the parity check. `batch`: "dynamic" or a fixed batch size. `layout`: "nhwc" (RGB
    NHWC 0..255) or, for ONNX, "insightface" (`recipes.commands.insightface_layout`). Raises ExportError
    for bad options, a missing ONNX extra, or a parity failure (then nothing at `out` is changed).
    """
    model_path, run_dir = find_model_file(model)
    if out is None:
        out = os.path.join(run_dir or os.path.dirname(os.path.abspath(model_path)), "export", DEFAULT_NAMES.get(
            format_name, "model"))
    out, batch, precision = _options(format_name, os.fspath(out), batch, precision, layout)
    if format_name == "onnx":
        try:
            require_onnx_packages()
        except ImportError as error:
            raise ExportError(str(error)) from None
    import tensorflow as tf

    source = load_embedding_model(model_path)
    source_policy = sorted({layer.dtype_policy.name for layer in source._flatten_layers()})
    embedder = float32_model(source)
    size = int(embedder.input_shape[1])
    images = probe_faces(size, PROBE_IMAGES if batch is None else batch)
    expected = np.asarray(embedder(images, training=False))
    if layout == "insightface":
        embedder, images = insightface_model(embedder), insightface_blob(images)
    signature = [tf.TensorSpec((batch, *embedder.input_shape[1:]), tf.float32, name=embedder.inputs[0].name)]
    options = {}
    if precision == "float16":
        options = {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_types": [tf.float16]}}
    facts = {}

    def write(temp_path):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="In the future `np.object`", category=FutureWarning)
            embedder.export(temp_path, format=FORMATS[format_name], verbose=False, input_signature=signature,
                            **options)
        facts["parity"] = check_parity(temp_path, format_name, precision, images, expected)
        if layout == "insightface":
            facts["input"] = check_insightface_routing(temp_path)
        _make_readable(temp_path)

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    (atomic_write_directory if format_name == "saved_model" else atomic_write)(out, write)
    facts = {"format": format_name, "file": os.path.basename(os.path.normpath(out)), "precision": precision,
             "batch": "dynamic" if batch is None else batch, "layout": layout, **facts}
    card = write_model_card(os.path.dirname(os.path.abspath(out)), source_card(model_path, run_dir, source,
                                                                                 source_policy), facts["file"], facts)
    return {**facts, "out": out, "model": model_path, "model_card": card}


def format_export(result):
    """A few lines for the console about an export's result."""
    parity = result["parity"]
    return "\n".join([
        f"exported {result['model']} -> {result['out']} ({result['format']}, {result['precision']}, "
        f"batch {result['batch']})",
        f"parity on {parity['images']} synthetic faces with {parity['runtime']}: max relative error "
        f"{parity['max_relative_error']:.2e}, min cosine {parity['min_cosine']:.6f}",
        f"input '{parity['input_name']}': " + (
            "NCHW float32 RGB (x - 127.5) / 127.5, as insightface's ArcFaceONNX.get_feat feeds BGR crops"
            if result.get("layout") == "insightface" else "RGB NHWC float32 0..255")
        + f"; output '{parity['output_name']}': raw embedding",
        f"model card: {result['model_card']}",
    ])

