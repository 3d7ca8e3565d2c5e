"""The interface every face loss implements, and `build_loss`."""
import inspect

import keras
from keras import ops

from registry import LOSSES


class FaceLoss(keras.layers.Layer):
    """A loss that lives in the training model, so its state (e.g. centers) is saved with it.

    `call(labels, embeddings, logits, training)`: labels int (B,), embeddings (B, d),
    logits (B, num_classes) from the head → per-sample loss (B,) float32.
    """

    def __init__(self, num_classes, embedding_size, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.embedding_size = int(embedding_size)

    def call(self, labels, embeddings, logits, training=False):
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        return {**config, "num_classes": self.num_classes, "embedding_size": self.embedding_size}


def cosine_and_norms(embeddings, logits):
    """(cos θ (B, C), ‖x‖ (B,)), float32, from embeddings x (B, d) and NormDense logits x·w/‖w‖ (B, C).

    cos θ = logits / ‖x‖, with ‖x‖ floored at 1e-6 so a zero embedding gives cos 0, not NaN.
    """
    embeddings = ops.cast(embeddings, "float32")
    norms = ops.sqrt(ops.maximum(ops.sum(ops.square(embeddings), axis=-1), 1e-12))
    return ops.cast(logits, "float32") / norms[:, None], norms


def loss_options(name):
    """Keyword options (name → default) that the loss registered as `name` accepts."""
    target = LOSSES.get(name)
    params = inspect.signature(target).parameters
    skip = {"self", "num_classes", "embedding_size", "kwargs", "name", "trainable", "dtype"}
    return {
        key: param.default
        for key, param in params.items()
        if key not in skip and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
    }


def build_loss(name, num_classes, embedding_size, **options):
    """The loss registered as `name`, for `num_classes` classes and `embedding_size`-d embeddings."""
    return LOSSES.build(name, num_classes=num_classes, embedding_size=embedding_size, **options)
