"""Standalone evaluation of a saved model on verification `.bin` files."""
import os

from backbones.onnx_graph import is_onnx_file
from backbones.onnx_model import import_onnx_model
from callbacks.verification import VerificationCallback
from data.bins import BinFormatError
from recipes.face_model import FaceTrainingModel
from registry import MissingFileError
from storage.model_files import load_model_file, run_model_file


def load_embedding_model(path, backbone=None):
    """The embedding model saved at `path`: an embedding `.keras`, the embedder of a training `.keras`,
    a run folder's (`run_model_file`), or an `.onnx` face model imported into our registered `backbone`
    (None: the one the graph is).

    Raises MissingFileError for a missing file, `ModelFileError` for a file that is not a Keras
    model or that needs a plugin class not loaded (see `--plugins`), `OnnxImportError` for an
    `.onnx` file that is not an importable face model.
    """
    if os.path.isdir(path):
        path = run_model_file(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"model file {path!r} does not exist; pass a run folder or a .keras file written by "
                               "a run.")
    if is_onnx_file(path):
        return import_onnx_model(path, backbone)
    model = load_model_file(path, compile=False)
    return model.embedder if isinstance(model, FaceTrainingModel) else model


def evaluate_saved_model(path, bin_paths, batch_size=128, backbone=None):
    """{bin name: verification metrics dict (None if embeddings were non-finite)} of the model at `path`
    (`backbone`: the registered backbone of an `.onnx` file)."""
    if not bin_paths:
        raise BinFormatError("no .bin files given; pass --bins=[lfw.bin,cfp_fp.bin,...].")
    embedder = load_embedding_model(path, backbone)
    image_size = int(embedder.input_shape[1])
    verification = VerificationCallback(bin_paths, embedder, batch_size, image_size=image_size,
                                        evaluate_before_training=False)
    return verification.evaluate()
