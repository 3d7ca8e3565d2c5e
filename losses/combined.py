"""Center loss added to any other registered loss."""
import keras

from losses.base import FaceLoss, build_loss
from losses.center import CenterLoss
from losses.presets import resolve_margin_options
from registry import LOSSES


@keras.saving.register_keras_serializable(package="faces")
class WithCenterLoss(FaceLoss):
    """base(labels, x, logits) + factor · center(labels, x, logits), per sample."""

    def __init__(self, num_classes, embedding_size, base, factor=1.0, alpha=0.5, **kwargs):
        super().__init__(num_classes, embedding_size, **kwargs)
        if isinstance(base, dict):
            base = keras.saving.deserialize_keras_object(base)
        self.base = base
        self.factor = float(factor)
        self.center = CenterLoss(num_classes, embedding_size, alpha=alpha, name="center")

    def margin_logits(self, labels, embeddings, logits, training=False):
        return self.base.margin_logits(labels, embeddings, logits, training=training)

    def sample_terms(self, labels, embeddings, training=False):
        center = self.factor * self.center.sample_terms(labels, embeddings, training=training)
        base_terms = self.base.sample_terms(labels, embeddings, training=training)
        return center if base_terms is None else base_terms + center

    def loss_without_parts(self):
        return self.base.loss_without_parts()

    def call(self, labels, embeddings, logits, training=False):
        """The base loss's own `call` (which may not split into parts) + factor × center loss."""
        base_loss = self.base(labels, embeddings, logits, training=training)
        return base_loss + self.factor * self.center.sample_terms(labels, embeddings, training=training)

    def get_config(self):
        return {
            **super().get_config(),
            "base": keras.saving.serialize_keras_object(self.base),
            "factor": self.factor,
            "alpha": self.center.alpha,
        }


def with_center_loss(base_name, num_classes, embedding_size, center_factor=1.0, center_alpha=0.5, **base_options):
    """The loss registered as `base_name` plus `center_factor` × center loss (centre step `center_alpha`)."""
    base = build_loss(base_name, num_classes, embedding_size, **base_options)
    return WithCenterLoss(num_classes, embedding_size, base, factor=center_factor, alpha=center_alpha)


def find_center_loss(loss):
    """The `CenterLoss` inside `loss` (itself, or the center part of a `WithCenterLoss`), or None."""
    if isinstance(loss, CenterLoss):
        return loss
    return loss.center if isinstance(loss, WithCenterLoss) else None


@LOSSES.register("center_softmax")
def center_softmax(num_classes, embedding_size, center_factor=1.0, center_alpha=0.5):
    """Softmax + center_factor × center loss (the spec's center_softmax_loss)."""
    return with_center_loss("softmax", num_classes, embedding_size, center_factor, center_alpha)


@LOSSES.register("center_arcface")
def center_arcface(num_classes, embedding_size, center_factor=1.0, center_alpha=0.5, margin1=None, margin2=None,
                   margin3=None, scale=64.0, preset="spec", margin_gradient="exact"):
    """Combined-margin ArcFace + center_factor × center loss (the spec's center_arcface_loss)."""
    return with_center_loss(
        "arcface", num_classes, embedding_size, center_factor, center_alpha,
        margin1=margin1, margin2=margin2, margin3=margin3, scale=scale, preset=preset, margin_gradient=margin_gradient,
    )


center_arcface.resolve_options = resolve_margin_options
