"""MagFace: a margin that grows with the feature norm, plus a regulariser that pulls the norm up.

Exact to IrvingMeng/MagFace `models/magface.py` (`MagLinear` with `easy_margin=True`,
`SoftmaxBuilder._margin`, `MagLoss`) and `run/trainer.py` (loss = loss_id + λ_g · loss_g),
on NormDense logits. Defaults from `run/run.sh`: l_a 10, u_a 110, l_m 0.45, u_m 0.8, λ_g 35, s 64.
"""
import keras
import tensorflow as tf

from losses.base import FaceLoss, cosine_and_norms, embedding_norms
from losses.margin import safe_acos
from losses.options import validate_magface_options
from registry import LOSSES


def magface_margin(clipped_norms, lower_norm, upper_norm, lower_margin, upper_margin):
    """m(a) = (u_m − l_m) / (u_a − l_a) · (a − l_a) + l_m, radians (the official `_margin`)."""
    return (upper_margin - lower_margin) / (upper_norm - lower_norm) * (clipped_norms - lower_norm) + lower_margin


def magface_logits(cosine, norms, labels, lower_norm, upper_norm, lower_margin, upper_margin, scale):
    """Scaled MagFace logits (B, C) from cos θ (B, C) and ‖x‖ (B,), with `easy_margin=True`.

        a = clip(‖x‖, l_a, u_a)            (with gradient, as `clamp` in the official code)
        target:     s · cos(θ_y + m(a))    where cos θ_y > 0,   s · cos θ_y otherwise
        non-target: s · cos θ_j
    cos θ is clipped to [−1, 1]; cos(θ + m) = cos θ cos m − sin θ sin m is evaluated as the cosine
    of `safe_acos(cos θ) + m`, the same value with a finite gradient at cos θ = ±1.
    """
    cosine = tf.clip_by_value(tf.cast(cosine, tf.float32), -1.0, 1.0)
    clipped = tf.clip_by_value(tf.cast(norms, tf.float32), lower_norm, upper_norm)
    margin = magface_margin(clipped, lower_norm, upper_norm, lower_margin, upper_margin)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    target_cosine = tf.gather(cosine, labels, axis=1, batch_dims=1)
    target = tf.where(target_cosine > 0.0, tf.cos(safe_acos(target_cosine) + margin), target_cosine)
    rows = tf.range(tf.shape(labels)[0], dtype=tf.int32)
    return scale * tf.tensor_scatter_nd_update(cosine, tf.stack([rows, labels], axis=1), target)


def magface_regulariser(norms, lower_norm, upper_norm):
    """g(a) = a / u_a² + 1 / a per sample, a = clip(‖x‖, l_a, u_a) (the official `calc_loss_G`)."""
    clipped = tf.clip_by_value(tf.cast(norms, tf.float32), lower_norm, upper_norm)
    return clipped / upper_norm**2 + 1.0 / clipped


@LOSSES.register("magface")
@keras.saving.register_keras_serializable(package="faces")
class MagFaceLoss(FaceLoss):
    """Per sample: cross-entropy of `magface_logits` + λ_g · g(a).

    Its batch mean is the official `loss_id + lambda_g * loss_g`. Official names: l_a =
    `lower_norm`, u_a = `upper_norm`, l_margin = `lower_margin`, u_margin = `upper_margin`,
    `lambda_g`, arc_scale = `scale`. Stateless.
    """

    def __init__(self, num_classes, embedding_size, lower_norm=10.0, upper_norm=110.0, lower_margin=0.45,
                 upper_margin=0.8, lambda_g=35.0, scale=64.0, **kwargs):
        super().__init__(num_classes, embedding_size, **kwargs)
        self.validate_options(lower_norm=lower_norm, upper_norm=upper_norm, lower_margin=lower_margin,
                              upper_margin=upper_margin, lambda_g=lambda_g, scale=scale)
        self.lower_norm, self.upper_norm = float(lower_norm), float(upper_norm)
        self.lower_margin, self.upper_margin = float(lower_margin), float(upper_margin)
        self.lambda_g, self.scale = float(lambda_g), float(scale)

    validate_options = staticmethod(validate_magface_options)

    def margin_logits(self, labels, embeddings, logits, training=False):
        cosine, norms = cosine_and_norms(embeddings, logits)
        return magface_logits(cosine, norms, labels, self.lower_norm, self.upper_norm, self.lower_margin,
                              self.upper_margin, self.scale)

    def sample_terms(self, labels, embeddings, training=False):
        return self.lambda_g * magface_regulariser(embedding_norms(embeddings), self.lower_norm, self.upper_norm)

    def get_config(self):
        return {
            **super().get_config(), "lower_norm": self.lower_norm, "upper_norm": self.upper_norm,
            "lower_margin": self.lower_margin, "upper_margin": self.upper_margin, "lambda_g": self.lambda_g,
            "scale": self.scale,
        }
