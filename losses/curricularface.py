"""CurricularFace: ArcFace on the target, hard negatives re-weighted by a running curriculum t.

Exact to HuangYG123/CurricularFace `head/metrics.py` (class `CurricularFace`), on NormDense
logits; cross-entropy as in its `train.py` (`LOSS_NAME = 'Softmax'`). Defaults m 0.5, s 64.
"""
import math

import keras
import tensorflow as tf

from losses.base import FaceLoss, cosine_and_norms
from losses.cross_replica import global_batch
from losses.margin import safe_acos
from losses.options import validate_curricularface_options
from registry import LOSSES

T_MOMENTUM = 0.01  # the official `t = mean(cos θ_y) * 0.01 + (1 - 0.01) * t`


def curricular_logits(cosine, labels, t, margin, scale):
    """Scaled CurricularFace logits (B, C) from cos θ (B, C), labels (B,) and the curriculum t.

    cos θ clipped to [−1, 1]; cos(θ_y + m) as the cosine of `safe_acos(cos θ_y) + m`:
        target:        s · cos(θ_y + m)               where cos θ_y > cos(π − m),
                       s · (cos θ_y − m · sin(π − m))  otherwise;
        hard negative: s · cos θ_j · (t + cos θ_j)     where cos θ_j > cos(θ_y + m) (t: no gradient),
        other:         s · cos θ_j.
    """
    cosine = tf.clip_by_value(tf.cast(cosine, tf.float32), -1.0, 1.0)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    target_cosine = tf.gather(cosine, labels, axis=1, batch_dims=1)
    cos_theta_m = tf.cos(safe_acos(target_cosine) + margin)
    target = tf.where(target_cosine > math.cos(math.pi - margin), cos_theta_m,
                      target_cosine - math.sin(math.pi - margin) * margin)
    t = tf.stop_gradient(tf.cast(t, tf.float32))
    hard = cosine > cos_theta_m[:, None]
    reweighted = tf.where(hard, cosine * (t + cosine), cosine)
    rows = tf.range(tf.shape(labels)[0], dtype=tf.int32)
    return scale * tf.tensor_scatter_nd_update(reweighted, tf.stack([rows, labels], axis=1), target)


@LOSSES.register("curricularface")
@keras.saving.register_keras_serializable(package="faces")
class CurricularFaceLoss(FaceLoss):
    """Cross-entropy on `curricular_logits`; t (initially 0) is a non-trainable weight of this layer.

    While training, first t ← 0.01 · mean(cos θ_y) + 0.99 · t over the global batch (all replicas
    gathered, so every replica holds the same t; cos θ_y clipped to [−1, 1]), then the logits
    use the new t (the official order). With `training=False` the stored t is used, unchanged.
    """

    def __init__(self, num_classes, embedding_size, margin=0.5, scale=64.0, **kwargs):
        super().__init__(num_classes, embedding_size, **kwargs)
        self.validate_options(margin=margin, scale=scale)
        self.margin, self.scale = float(margin), float(scale)
        self.t = self.add_weight(name="t", shape=(), initializer="zeros", trainable=False,
                                 aggregation="only_first_replica")
        self.built = True

    validate_options = staticmethod(validate_curricularface_options)

    def margin_logits(self, labels, embeddings, logits, training=False):
        cosine, _ = cosine_and_norms(embeddings, logits)
        if training:
            indices = tf.cast(tf.reshape(labels, [-1]), tf.int32)
            target_cosine = tf.clip_by_value(tf.gather(cosine, indices, axis=1, batch_dims=1), -1.0, 1.0)
            (all_targets,) = global_batch(tf.stop_gradient(target_cosine))
            self.t.assign(T_MOMENTUM * tf.reduce_mean(all_targets) + (1.0 - T_MOMENTUM) * self.t)
        return curricular_logits(cosine, labels, tf.convert_to_tensor(self.t), self.margin, self.scale)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "scale": self.scale}
