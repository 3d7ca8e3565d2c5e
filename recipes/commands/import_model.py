"""`python -m recipes import_model`: an ONNX face model → our registered backbone's `.keras` embedding model, checked.

Without `--backbone` the variant is read from the graph (`backbones.onnx_variants`) and said;
the imported model is compared with onnxruntime on the file before anything is written.
"""
import time

import numpy as np

from backbones.onnx_graph import OnnxImportError, parse_onnx
from backbones.onnx_model import import_onnx_model
from backbones.onnx_variants import detect_variant
from storage.atomic import save_model

CHECK_IMAGES = 4
MAX_RELATIVE_ERROR = 1e-4


def relative_error_against_onnxruntime(model, graph, count=CHECK_IMAGES, seed=0):
    """max |ours − theirs| / max |theirs| over `count` random images, theirs from onnxruntime on the file of the
    `OnnxGraph` `graph`; None when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    size = int(model.input_shape[1])
    images = np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype(np.float32)
    session = onnxruntime.InferenceSession(graph.path, providers=["CPUExecutionProvider"])
    theirs = session.run(None, {session.get_inputs()[0].name: graph.input_images(images)})[0]
    ours = np.asarray(model(images, training=False))
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def import_model(onnx_path, backbone=None, out="imported.keras", image_size=None):
    """Import `onnx_path` into `backbone` (None: the one the graph is), check it, save it to `out`; a summary."""
    if not str(out).endswith(".keras"):
        raise OnnxImportError(f"--out={out!r}: the imported model is saved as a Keras model, give a path ending in "
                              ".keras.")
    started = time.perf_counter()
    graph = parse_onnx(onnx_path)
    try:
        variant = detect_variant(graph)
    except OnnxImportError:
        if backbone is None:
            raise
        variant = None
    model = import_onnx_model(onnx_path, backbone, image_size, graph=graph)
    seconds = time.perf_counter() - started
    error = relative_error_against_onnxruntime(model, graph)
    if error is not None and not error <= MAX_RELATIVE_ERROR:
        raise OnnxImportError(f"{onnx_path!r}: the imported model differs from onnxruntime's by {error:.3g} (relative) "
                              f"> {MAX_RELATIVE_ERROR:g}; nothing written. Please report this with the file.")
    save_model(model, out)
    found = f"found: {variant.description}" if variant else "found: no registered variant recognised"
    check = ("not checked (onnxruntime is not installed)" if error is None else
             f"max relative difference to onnxruntime on {CHECK_IMAGES} random images: {error:.2e}")
    to_train = f"{variant.flags()} --backbone_weights={onnx_path}" if variant else \
        f"--backbone={backbone} --backbone_weights={onnx_path}"
    return "\n".join([
        found,
        f"imported {onnx_path} into {model.name.removesuffix('_embedding')} in {seconds:.1f} s: "
        f"{model.count_params():,} weights, {model.output_shape[-1]}-d embedding; saved {out}",
        check,
        f"input: RGB (B, {model.input_shape[1]}, {model.input_shape[2]}, 3) float 0..255 (normalised inside); "
        "output: the ONNX model's embedding for insightface's input convention.",
        f"to fine-tune it: python -m recipes run RECIPE {to_train}",
    ])
