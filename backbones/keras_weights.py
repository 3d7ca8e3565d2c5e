"""Starting an embedding model from one of ours saved as `.keras` (a run's `embedding.keras` or `best_embedding.keras`).

`--backbone_weights=FILE.keras` of such a file loads the whole embedding model, embedding block
included, as an `.onnx` file does; any other weights file (`.weights.h5`, a Keras model of the
feature network alone) still goes to the backbone only. Which one a `.keras` file holds is read
from its `config.json`, without building it.
"""
import json
import zipfile

import keras

from registry import UserError

EMBEDDING_LAYER = "normalise"  # the input normalisation layer every embedding model of ours begins with


class EmbeddingWeightsError(UserError, ValueError):
    """A `.keras` embedding model that cannot start this one; the message names the file and the mismatch."""


def saved_config(path):
    """The model config in the `.keras` archive `path` (a dict), or None when it is not such an archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        return None


def is_saved_embedding_model(path):
    """True when `path` is a `.keras` file of one of our embedding models (or our training model, refused later)."""
    if not str(path).lower().endswith(".keras"):
        return False
    config = saved_config(path)
    if config is None:
        return False
    if config.get("class_name") == "FaceTrainingModel":
        return True
    layers = config.get("config", {}).get("layers", [])
    return any(layer.get("config", {}).get("name") == EMBEDDING_LAYER for layer in layers)


def load_embedding_weights(model, path):
    """Copy the weights of the embedding model saved at `path` into `model` (the same backbone and embedding size)."""
    if saved_config(path).get("class_name") == "FaceTrainingModel":
        raise EmbeddingWeightsError(f"--backbone_weights={path!r} is a training model (model.keras); pass the run's "
                         "embedding.keras or best_embedding.keras, the embedding model alone.")
    saved = keras.saving.load_model(path, compile=False)
    theirs, ours = saved.weights, model.weights
    for index, (their, our) in enumerate(zip(theirs, ours)):
        if tuple(their.shape) != tuple(our.shape):
            raise EmbeddingWeightsError(f"--backbone_weights={path!r} ({saved.name}) does not fit {model.name}: weight {index} "
                             f"{their.path} is {tuple(their.shape)}, ours ({our.path}) {tuple(our.shape)}; pass "
                             "the backbone and --embedding_size it was trained with.")
    if len(theirs) != len(ours):
        raise EmbeddingWeightsError(f"--backbone_weights={path!r} ({saved.name}) has {len(theirs)} weights, {model.name} "
                         f"{len(ours)}; pass the backbone it was trained with.")
    model.set_weights(saved.get_weights())
    return model
