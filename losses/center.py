"""Center loss: pull each embedding towards a running centre of its class."""
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from losses.base import FaceLoss
from losses.cross_replica import global_batch
from losses.options import validate_center_options
from registry import LOSSES, MissingFileError


def center_update(centers, embeddings, labels, alpha):
    """New centres after one batch: c_j ← c_j − α · Σ_{i: y_i = j} (c_j − e_i) / (1 + n_j).

    centers (C, d), embeddings (B, d), labels int (B,); n_j = number of rows of class j in
    this batch. Classes absent from the batch are unchanged. XLA-compatible (no
    `unique_with_counts`, no `boolean_mask`).
    """
    centers = tf.convert_to_tensor(centers)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    embeddings = tf.cast(embeddings, centers.dtype)
    same_class = tf.cast(tf.equal(labels[:, None], labels[None, :]), centers.dtype)
    counts = tf.reduce_sum(same_class, axis=1, keepdims=True)
    steps = alpha * (tf.gather(centers, labels) - embeddings) / (1.0 + counts)
    return tf.tensor_scatter_nd_sub(centers, labels[:, None], steps)


@LOSSES.register("center")
@keras.saving.register_keras_serializable(package="faces")
class CenterLoss(FaceLoss):
    """mean_k (e_k − c_{y,k})² per sample; centres (C, d) are a weight of this layer.

    While training, centres move by `center_update` on the global batch (all replicas
    gathered, so every replica applies the same update). Saved and restored with the
    model; `export_centers` / `import_centers` read and write the spec's `centers.npy`.
    """

    def __init__(self, num_classes, embedding_size, alpha=0.5, **kwargs):
        super().__init__(num_classes, embedding_size, **kwargs)
        self.validate_options(alpha=alpha)
        self.alpha = float(alpha)
        self.centers = self.add_weight(
            name="centers", shape=(self.num_classes, self.embedding_size), initializer="zeros",
            trainable=False, aggregation="only_first_replica",
        )
        self.built = True

    validate_options = staticmethod(validate_center_options)

    def margin_logits(self, labels, embeddings, logits, training=False):
        return None

    def sample_terms(self, labels, embeddings, training=False):
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        embeddings = ops.cast(embeddings, "float32")
        loss = ops.mean(ops.square(embeddings - ops.take(self.centers, labels, axis=0)), axis=-1)
        if training:
            all_labels, all_embeddings = global_batch(labels, tf.stop_gradient(embeddings))
            self.centers.assign(center_update(self.centers, all_embeddings, all_labels, self.alpha))
        return loss

    def export_centers(self, path):
        """Write the centres to `path` as a (C, d) float32 `.npy` file."""
        np.save(path, np.asarray(self.centers.numpy(), dtype=np.float32))

    def import_centers(self, path):
        """Load (C, d) centres from the `.npy` file `path`."""
        if not os.path.isfile(path):
            raise MissingFileError(f"centers file {path!r} does not exist; pass a .npy written by export_centers.")
        values = np.load(path, allow_pickle=False)
        expected = (self.num_classes, self.embedding_size)
        if values.shape != expected:
            raise ValueError(
                f"centers file {path!r} has shape {values.shape}, but this model needs {expected} "
                "(classes, embedding size): it comes from another dataset or embedding size."
            )
        self.centers.assign(values.astype(np.float32))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}
