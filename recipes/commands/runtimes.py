"""Run an exported embedding model with its format's own runtime: images (B, S, S, 3) float32 → (B, d) float32.

SavedModel: `tf.saved_model.load(path).serve`; ONNX: `onnxruntime.InferenceSession` (CPU); TFLite:
the LiteRT interpreter (`ai_edge_litert`, what Keras' own LiteRT tests use), else TensorFlow's
deprecated `tf.lite.Interpreter`. Used to verify exports and by `benchmarks/export_latency.py`.
"""
import importlib.util
import warnings

import numpy as np

EXPORT_EXTRA_HINT = "install the export extra: pip install -e '.[export]' (tf2onnx, onnx, onnxruntime, ai-edge-litert)"
ONNX_PACKAGES = ("tf2onnx", "onnx", "onnxruntime")


def require_onnx_packages():
    """Raise ImportError naming the missing packages when ONNX export or inference is not installed."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"ONNX export needs {', '.join(missing)}, which are not installed; {EXPORT_EXTRA_HINT}.")


class SavedModelRuntime:
    """A SavedModel's `serve` signature, loaded with `tf.saved_model.load` (no Keras, no project code)."""

    def __init__(self, path):
        import tensorflow as tf

        self.model = tf.saved_model.load(path)
        signature = self.model.signatures["serve"]
        self.input_name = next(iter(signature.structured_input_signature[1]))
        self.output_name = next(iter(signature.structured_outputs))

    def __call__(self, images):
        return np.asarray(self.model.serve(np.asarray(images, np.float32)))


class OnnxRuntime:
    """An ONNX model in an `onnxruntime.InferenceSession` on the CPU."""

    def __init__(self, path, threads=0):
        require_onnx_packages()
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, images):
        return self.session.run([self.output_name], {self.input_name: np.asarray(images, np.float32)})[0]


def tflite_interpreter_class():
    """The LiteRT `Interpreter` class: `ai_edge_litert`'s, or TensorFlow's deprecated one if that is not installed."""
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    import tensorflow as tf

    warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
    return tf.lite.Interpreter


class TfliteRuntime:
    """A `.tflite` model in the LiteRT interpreter; the input is resized whenever the batch size changes."""

    def __init__(self, path, threads=None):
        self.interpreter = tflite_interpreter_class()(model_path=path, num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.input_name, self.output_name = self.input["name"], self.output["name"]
        self.batch_size = None

    def __call__(self, images):
        images = np.asarray(images, np.float32)
        if len(images) != self.batch_size:
            self.interpreter.resize_tensor_input(self.input["index"], images.shape)
            self.interpreter.allocate_tensors()
            self.batch_size = len(images)
        self.interpreter.set_tensor(self.input["index"], images)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()


RUNTIMES = {"saved_model": SavedModelRuntime, "onnx": OnnxRuntime, "tflite": TfliteRuntime}


def load_runtime(path, format_name):
    """A callable images float32 (B, S, S, 3) → embeddings (B, d) for the exported model at `path`."""
    return RUNTIMES[format_name](path)
