"""The ArcFace family: combined angular/additive margins on the target-class cosine."""
import math

import keras
import tensorflow as tf

from losses.base import FaceLoss, cosine_and_norms
from losses.presets import preset_margins, resolve_margin_options
from registry import LOSSES

_ACOS_GRADIENT_FLOOR = 1e-6
# How the target logit's margin enters the gradient: "exact" differentiates cos(m1·θ + m3) − m2 (insightface's MXNet
# code, arcface_torch up to d9cb10e); "straight_through" passes the gradient to cos θ_y as if there were no margin
# (arcface_torch since 657ae30 of 2022-12-15, `recognition/arcface_torch/losses.py`: the margin is computed in place
# under `torch.no_grad()`). Both give the same loss value.
MARGIN_GRADIENTS = ("exact", "straight_through")


@tf.custom_gradient
def safe_acos(cosine):
    """acos(clip(cosine, -1, 1)), with the gradient kept finite at cos = ±1."""
    clipped = tf.clip_by_value(cosine, -1.0, 1.0)

    def gradient(upstream):
        return -upstream / tf.sqrt(tf.maximum(1.0 - tf.square(clipped), _ACOS_GRADIENT_FLOOR))

    return tf.acos(clipped), gradient


@tf.custom_gradient
def straight_through(value, source):
    """`value` in the forward pass; backward, the upstream gradient goes to `source` unchanged (∂value/∂source
    taken as 1) and none to `value`. Shapes equal."""

    def gradient(upstream):
        return tf.zeros_like(upstream), upstream

    return tf.identity(value), gradient


def check_margin_gradient(margin_gradient):
    """`margin_gradient` if it is one of MARGIN_GRADIENTS, else ValueError."""
    if margin_gradient not in MARGIN_GRADIENTS:
        raise ValueError(f"margin_gradient={margin_gradient!r}: choose exact (the analytic gradient) or "
                         "straight_through (arcface_torch since December 2022: the margin gets no gradient).")
    return margin_gradient


def combined_margin_logits(cosine, labels, margin1, margin2, margin3, scale, margin_gradient="exact"):
    """Scaled logits with the combined margin on each row's target class.

    cosine: (B, C) float, labels: int (B,). With θ = acos(clip(cos_y, -1, 1)):
        target:     s · (cos(m1·θ + m3) − m2)   where m1·θ + m3 ≤ π,
                    s · cos θ                    otherwise (the spec's guard),
        non-target: s · cos θ_j.
    Order (m1, m2, m3) is the spec's: m1 multiplies the angle, m2 is subtracted from the
    cosine, m3 is added to the angle (insightface's m2 and m3 are swapped relative to this).
    ArcFace = (1, 0, 0.5), CosFace = (1, 0.35, 0). Computed in float32.
    `margin_gradient` (MARGIN_GRADIENTS): "exact" differentiates the target's formula;
    "straight_through" gives ∂target/∂cos θ_y = 1 (the same logits).
    """
    cosine = tf.clip_by_value(tf.cast(cosine, tf.float32), -1.0, 1.0)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    target_cosine = tf.gather(cosine, labels, axis=1, batch_dims=1)
    angle = margin1 * safe_acos(target_cosine) + margin3
    target = tf.where(angle <= math.pi, tf.cos(angle) - margin2, target_cosine)
    if check_margin_gradient(margin_gradient) == "straight_through":
        target = straight_through(target, target_cosine)
    rows = tf.range(tf.shape(labels)[0], dtype=tf.int32)
    logits = tf.tensor_scatter_nd_update(cosine, tf.stack([rows, labels], axis=1), target)
    return scale * logits


@LOSSES.register("arcface")
@keras.saving.register_keras_serializable(package="faces")
class MarginLoss(FaceLoss):
    """Combined margin: default the seed's (0.9, 0.4, 0.15); the paper's (1, 0, 0.5) with --loss_args.preset=arcface.

    Margins come from `preset` (`losses.presets.MARGIN_PRESETS`: "spec" = (0.9, 0.4, 0.15), the seed document's
    default; "arcface" = (1, 0, 0.5), the paper's; "cosface" = (1, 0.35, 0); "sphereface" = (1.35, 0, 0);
    "combined" = (1, 0.2, 0.3)); a margin given explicitly overrides the preset's.
    `margin_gradient`: "exact" or "straight_through" (see MARGIN_GRADIENTS; for CosFace both
    are the same, its target cos θ_y − m2 has derivative 1).
    """

    def __init__(self, num_classes, embedding_size, margin1=None, margin2=None, margin3=None, scale=64.0,
                 preset="spec", margin_gradient="exact", **kwargs):
        super().__init__(num_classes, embedding_size, **kwargs)
        self.margin_gradient = check_margin_gradient(margin_gradient)
        self.margin1, self.margin2, self.margin3 = preset_margins(margin1, margin2, margin3, preset)
        self.scale = float(scale)

    resolve_options = staticmethod(resolve_margin_options)

    def margin_logits(self, labels, embeddings, logits, training=False):
        cosine, _ = cosine_and_norms(embeddings, logits)
        return combined_margin_logits(cosine, labels, self.margin1, self.margin2, self.margin3, self.scale,
                                      self.margin_gradient)

    def get_config(self):
        return {
            **super().get_config(),
            "margin1": self.margin1, "margin2": self.margin2, "margin3": self.margin3, "scale": self.scale,
            "margin_gradient": self.margin_gradient,
        }


@LOSSES.register("cosface")
def cosface(num_classes, embedding_size, margin2=0.35, scale=64.0, **kwargs):
    """CosFace (Wang et al. 2018): s·(cos θ_y − m2), m2 0.35, s 64; the `arcface` loss with preset cosface."""
    return MarginLoss(num_classes, embedding_size, margin2=margin2, scale=scale, preset="cosface", **kwargs)
