"""`python -m recipes import_model`: an ONNX face model → our registered backbone's `.keras` embedding model, checked."""
import time

import numpy as np

from backbones.onnx_import import import_onnx_model, onnx_input, read_onnx
from registry import OptionError
from storage.atomic import save_model

CHECK_IMAGES = 4


def relative_error_against_onnxruntime(model, path, count=CHECK_IMAGES, seed=0):
    """max |ours − theirs| / max |theirs| over `count` random images, theirs from onnxruntime on the file;
    None when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    size = int(model.input_shape[1])
    images = np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype(np.float32)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    theirs = session.run(None, {session.get_inputs()[0].name: onnx_input(read_onnx(path), images)})[0]
    ours = np.asarray(model(images, training=False))
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def import_model(onnx_path, backbone, out, image_size=None):
    """Import `onnx_path` into `backbone`, save it to `out` (atomically); a summary to print."""
    if not str(out).endswith(".keras"):
        raise OptionError("--out", out, "must end in .keras: the imported model is saved as a Keras model.")
    started = time.perf_counter()
    model = import_onnx_model(onnx_path, backbone, image_size)
    seconds = time.perf_counter() - started
    error = relative_error_against_onnxruntime(model, onnx_path)
    save_model(model, out)
    check = ("not checked (onnxruntime is not installed)" if error is None else
             f"max relative difference to onnxruntime on {CHECK_IMAGES} random images: {error:.2e}")
    return "\n".join([
        f"imported {onnx_path} into {backbone} in {seconds:.1f} s: {model.count_params():,} weights, "
        f"{model.output_shape[-1]}-d embedding; saved {out}",
        check,
        f"input: RGB (B, {model.input_shape[1]}, {model.input_shape[2]}, 3) float 0..255 (normalised inside); "
        "output: the ONNX model's embedding for insightface's input convention.",
    ])
