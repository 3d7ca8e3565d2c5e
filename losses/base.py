"""The interface every face loss implements, and `build_loss`."""
import inspect

import keras
import numpy as np
from keras import ops

from registry import LOSSES, UserError

CHECK_BATCH = 4
"""Samples in the tiny batch `check_loss_output` runs a loss on."""


class LossShapeError(UserError, ValueError):
    """A loss that does not return one value per sample; the message names the loss, its class and the shape."""


class FaceLoss(keras.layers.Layer):
    """A loss that lives in the training model, so its state (e.g. centers) is saved with it.

    `call(labels, embeddings, logits, training)`: labels int (B,), embeddings (B, d),
    logits (B, num_classes) from the head → per-sample loss (B,) float32.

    A loss made of a softmax cross-entropy and per-sample terms defines its two parts,
    `margin_logits` and `sample_terms`, and inherits `call` = cross-entropy + terms. Only such
    a loss (`loss_without_parts()` is None) runs on a class-sharded head (`partial_fc`), which computes the
    cross-entropy across shards itself (heads/sharded_softmax.py). A loss may instead override
    `call` alone.
    """

    def __init__(self, num_classes, embedding_size, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.embedding_size = int(embedding_size)

    def margin_logits(self, labels, embeddings, logits, training=False):
        """Logits (B, K) whose softmax cross-entropy against `labels` is this loss's class term, or None.

        `logits` (B, K) are x·w/‖w‖ for K columns (all classes, or a class-sharded head's
        columns plus one column holding each row's target logit); `labels` int (B,) index those
        columns. Each new logit (i, j) may depend only on logit (i, j), the row's target logit
        (column `labels[i]`), the row's embedding and the loss's state, never on other columns:
        then the shards compute it independently. While training, state is updated from the
        global batch (`losses.center.global_batch`).
        """
        raise NotImplementedError(
            f"loss {self.name!r} ({type(self).__name__}) does not define margin_logits/sample_terms, so it cannot "
            "run on a class-sharded head (partial_fc); use --head=norm_dense or split the loss into those two parts."
        )

    def sample_terms(self, labels, embeddings, training=False):
        """Per-sample terms (B,) added to the cross-entropy that do not use the classifier, or None."""
        return None

    def loss_without_parts(self):
        """This loss, or the one inside it, that does not define `margin_logits`, so cannot run on a
        class-sharded head; None if every part does."""
        return self if type(self).margin_logits is FaceLoss.margin_logits else None

    def call(self, labels, embeddings, logits, training=False):
        margined = self.margin_logits(labels, embeddings, logits, training=training)
        terms = self.sample_terms(labels, embeddings, training=training)
        if margined is None:
            return terms
        loss = ops.sparse_categorical_crossentropy(labels, margined, from_logits=True)
        return loss if terms is None else loss + terms

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        return {**config, "num_classes": self.num_classes, "embedding_size": self.embedding_size}


def embedding_norms(embeddings):
    """‖x‖ (B,) float32 of embeddings x (B, d), floored at 1e-6 (so a zero embedding divides to 0, not NaN)."""
    embeddings = ops.cast(embeddings, "float32")
    return ops.sqrt(ops.maximum(ops.sum(ops.square(embeddings), axis=-1), 1e-12))


def cosine_and_norms(embeddings, logits):
    """(cos θ (B, C), ‖x‖ (B,)), float32, from embeddings x (B, d) and NormDense logits x·w/‖w‖ (B, C).

    cos θ = logits / ‖x‖, with ‖x‖ as `embedding_norms`.
    """
    norms = embedding_norms(embeddings)
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


def wrong_shape_message(face_loss, shape, batch):
    """The sentence that refuses `face_loss` for returning `shape` on a batch of `batch` samples."""
    kind = type(face_loss)
    return (f"loss {face_loss.name!r} ({kind.__module__}.{kind.__qualname__}) returned shape {shape} for a batch of "
            f"{batch} samples; a face loss must return one value per sample, shape ({batch},). Reduce the other axes "
            "inside its `call` and leave the mean over the batch to the trainer.")


def check_loss_output(face_loss, batch=CHECK_BATCH):
    """Call `face_loss` and every `FaceLoss` inside it (innermost first) once on a tiny batch; LossShapeError
    unless each returns shape (batch,).

    The batch: labels `arange(batch) % num_classes` (B,), embeddings (B, d) and their cosine logits
    against random unit class vectors (B, num_classes), fixed seed, float32; `training=False`, so no
    state (centres, batch statistics) changes. Run it before anything is written: a wrong shape is
    otherwise found only when the train step is traced.
    """
    rng = np.random.default_rng(0)
    parts = [layer for layer in face_loss._flatten_layers(include_self=True) if isinstance(layer, FaceLoss)]
    for part in reversed(parts):
        embeddings = rng.normal(size=(batch, part.embedding_size)).astype(np.float32)
        weights = rng.normal(size=(part.embedding_size, part.num_classes))
        logits = (embeddings @ (weights / np.linalg.norm(weights, axis=0))).astype(np.float32)
        labels = (np.arange(batch) % part.num_classes).astype(np.int32)
        shape = tuple(ops.shape(part(labels, embeddings, logits, training=False)))
        if shape != (batch,):
            raise LossShapeError(wrong_shape_message(part, shape, batch))
