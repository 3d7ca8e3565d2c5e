"""Face losses (labels, embeddings, logits) → per-sample loss, registered in `registry.LOSSES`.

Every loss takes sparse integer class ids, shape (B,). Build one with
`build_loss(name, num_classes, embedding_size, **options)`.
"""
# Importing the modules registers the losses.
from losses import adaface, combined, curricularface, elasticface, magface, margin, softmax  # noqa: F401
from losses.adaface import AdaFaceLoss
from losses.base import FaceLoss, build_loss
from losses.center import CenterLoss, center_update
from losses.combined import WithCenterLoss
from losses.curricularface import CurricularFaceLoss
from losses.elasticface import ElasticFaceLoss
from losses.magface import MagFaceLoss
from losses.margin import MarginLoss, combined_margin_logits
from losses.softmax import SoftmaxLoss

__all__ = [
    "FaceLoss", "build_loss", "CenterLoss", "center_update", "WithCenterLoss",
    "MarginLoss", "combined_margin_logits", "SoftmaxLoss",
    "AdaFaceLoss", "MagFaceLoss", "CurricularFaceLoss", "ElasticFaceLoss",
]
