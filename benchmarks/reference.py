"""The plain reference trainer: the spec's code, written the way the spec writes it, on the Keras 3 API.

What the benchmarks compare our recipe path against. Deliberately *not* optimised:
one-hot labels (B, C), a model whose output is `concatenate([embedding, logits])`,
losses that slice `y_pred[:, :embedding_size]` / `y_pred[:, embedding_size:]`, the
spec's `NormDense` (`tf.nn.l2_normalize(W, axis=0)`), the spec's ArcFace (`tf.acos` of
the unclipped cosine, `tf.where` on the one-hot mask), the spec's center loss (a
`keras.losses.Loss` with a `tf.Variable` of centres updated inside the loss through
`tf.unique_with_counts`) and `model.compile(optimizer="adamax", loss=..., metrics=[logits_accuracy])`.

Only the Keras 2 → Keras 3 changes are made: `add_weight(name=..., shape=...)` with
keywords, a `get_config` that returns its config, and `jit_compile=False` stated
explicitly (Keras' "auto" picks the same on a CPU-only machine). The embedding model is
passed in, so reference and recipe path train the very same network.
"""
import keras
import numpy as np
import tensorflow as tf
from keras import layers


class SpecNormDense(keras.layers.Layer):
    """The spec's NormDense: `x @ l2_normalize(W, axis=0)`, W random-normal initialised."""

    def __init__(self, classes=1000, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = classes

    def build(self, input_shape):
        self.w = self.add_weight(name="norm_dense_w", shape=(input_shape[-1], self.output_dim),
                                 initializer="random_normal", trainable=True)

    def call(self, inputs):
        norm_w = tf.nn.l2_normalize(self.w, axis=0)
        return tf.matmul(inputs, norm_w)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "classes": self.output_dim}


def reference_model(embedder, num_classes):
    """The spec's training model: image → concatenate([embedding (B, d), logits (B, C)]) (B, d + C)."""
    inputs = embedder.inputs[0]
    embedding = embedder.outputs[0]
    output = SpecNormDense(num_classes, name="norm_dense")(embedding)
    concate = layers.concatenate([embedding, output], name="concate")
    return keras.models.Model(inputs, concate)


def make_logits_accuracy(embedding_size):
    """The spec's metric: categorical accuracy of `y_pred[:, embedding_size:]` against one-hot labels."""

    def logits_accuracy(y_true, y_pred):
        logits = y_pred[:, embedding_size:]
        return keras.metrics.categorical_accuracy(y_true, logits)

    return logits_accuracy


def make_softmax_loss(embedding_size):
    """The spec's softmax_loss: categorical cross-entropy (from logits) on `y_pred[:, embedding_size:]`."""

    def softmax_loss(y_true, y_pred):
        logits = y_pred[:, embedding_size:]
        return keras.losses.categorical_crossentropy(y_true, logits, from_logits=True)

    return softmax_loss


def make_arcface_loss(embedding_size, margin1=0.9, margin2=0.4, margin3=0.15, scale=64.0):
    """The spec's arcface_loss, as written: acos of `logits / ||embedding||`, margin on the one-hot mask."""

    def arcface_loss(y_true, y_pred):
        embedding = y_pred[:, :embedding_size]
        logits = y_pred[:, embedding_size:]
        norm_emb = tf.norm(embedding, axis=1, keepdims=True)
        norm_logits = logits / norm_emb

        theta = tf.acos(norm_logits)
        cond = tf.where(tf.greater(theta * margin1 + margin3, np.pi), tf.zeros_like(y_true), y_true)
        cond = tf.cast(cond, dtype=tf.bool)
        m1_theta_plus_m3 = tf.where(cond, theta * margin1 + margin3, theta)
        cos_m1_theta_plus_m3 = tf.cos(m1_theta_plus_m3)
        arcface_logits = tf.where(cond, cos_m1_theta_plus_m3 - margin2, cos_m1_theta_plus_m3) * scale
        return keras.losses.categorical_crossentropy(y_true, arcface_logits, from_logits=True)

    return arcface_loss


class SpecCenterLoss(keras.losses.Loss):
    """The spec's Center_loss: mean squared distance to the class centre; centres updated in the loss.

    `centers` is a plain `tf.Variable` (C, d); each call moves the batch's centres by
    `alpha * (c - e) / (1 + n)` with n from `tf.unique_with_counts` of the argmax labels.
    """

    def __init__(self, num_classes, feature_dim=512, alpha=0.5, factor=1.0):
        super().__init__()
        self.alpha = alpha
        self.factor = factor
        self.centers = tf.Variable(tf.zeros([num_classes, feature_dim]), trainable=False)

    def call(self, y_true, y_pred):
        labels = tf.argmax(y_true, axis=1)
        centers_batch = tf.gather(self.centers, labels)
        loss = tf.reduce_mean(tf.square(y_pred - centers_batch), axis=-1)

        diff = centers_batch - y_pred
        unique_label, unique_idx, unique_count = tf.unique_with_counts(labels)
        appear_times = tf.gather(unique_count, unique_idx)
        appear_times = tf.reshape(appear_times, [-1, 1])

        diff = diff / tf.cast((1 + appear_times), tf.float32)
        diff = self.alpha * diff
        self.centers.assign(tf.tensor_scatter_nd_sub(self.centers, tf.expand_dims(labels, 1), diff))
        return loss * self.factor


def center_loss_wrapper(center_loss, other_loss, embedding_size):
    """The spec's center_loss_wrapper: other_loss(y_true, y_pred) + center_loss(y_true, embedding)."""

    def _loss_func(y_true, y_pred):
        embedding = y_pred[:, :embedding_size]
        center_loss_v = center_loss(y_true, embedding)
        other_loss_v = other_loss(y_true, y_pred)
        return other_loss_v + center_loss_v

    _loss_func.__name__ = "center_" + other_loss.__name__
    return _loss_func


REFERENCE_LOSSES = ("softmax", "arcface", "center_softmax", "center_arcface")


def reference_loss(name, num_classes, embedding_size):
    """(loss function, center loss or None) for the spec's loss `name` (one of REFERENCE_LOSSES)."""
    if name not in REFERENCE_LOSSES:
        raise ValueError(f"the reference has no loss {name!r}; it implements {', '.join(REFERENCE_LOSSES)}.")
    base = name.removeprefix("center_")
    other = make_softmax_loss(embedding_size) if base == "softmax" else make_arcface_loss(embedding_size)
    if not name.startswith("center_"):
        return other, None
    center = SpecCenterLoss(num_classes, feature_dim=embedding_size, factor=1.0)
    return center_loss_wrapper(center, other, embedding_size), center


def build_reference(embedder, loss_name, num_classes, learning_rate=0.001):
    """The spec's compiled training model around `embedder`: fit it on (images, one-hot labels (B, C))."""
    embedding_size = int(embedder.outputs[0].shape[-1])
    model = reference_model(embedder, num_classes)
    loss, center = reference_loss(loss_name, num_classes, embedding_size)
    model.compile(optimizer=keras.optimizers.Adamax(learning_rate), loss=loss,
                  metrics=[make_logits_accuracy(embedding_size)], jit_compile=False)
    model.center_loss = center
    return model


def one_hot(labels, num_classes):
    """Int labels (B,) → float32 one-hot (B, C), the labels the spec's pipeline feeds."""
    return tf.one_hot(tf.convert_to_tensor(labels, tf.int32), depth=num_classes, dtype=tf.float32)
