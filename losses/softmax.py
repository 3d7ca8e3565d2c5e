"""Softmax cross-entropy on the head's logits."""
import keras
from keras import ops

from losses.base import FaceLoss
from registry import LOSSES


@LOSSES.register("softmax")
@keras.saving.register_keras_serializable(package="faces")
class SoftmaxLoss(FaceLoss):
    """-log softmax(logits)[y]: the NormDense logits `x · w_y / ||w_y||`, unscaled (the spec's)."""

    def margin_logits(self, labels, embeddings, logits, training=False):
        return ops.cast(logits, "float32")
