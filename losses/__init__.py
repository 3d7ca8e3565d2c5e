"""Face losses (labels, embeddings, logits) → per-sample loss, registered in `registry.LOSSES`.

Every loss takes sparse integer class ids, shape (B,). Build one with
`build_loss(name, num_classes, embedding_size, **options)`.
"""
from losses import combined, margin, softmax  # noqa: F401  (registers the losses)
from losses.base import FaceLoss, build_loss
from losses.center import CenterLoss, center_update
from losses.combined import WithCenterLoss
from losses.margin import MarginLoss, combined_margin_logits
from losses.softmax import SoftmaxLoss

__all__ = [
    "FaceLoss", "build_loss", "CenterLoss", "center_update", "WithCenterLoss",
    "MarginLoss", "combined_margin_logits", "SoftmaxLoss",
]
