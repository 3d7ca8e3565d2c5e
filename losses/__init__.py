"""Face losses (labels, embeddings, logits) → per-sample loss, registered in `registry.LOSSES`.

Every loss takes sparse integer class ids, shape (B,). Build one with
`build_loss(name, num_classes, embedding_size, **options)`. The built-in losses are declared in
`registry/manifest.py`; the names below import their module (and TensorFlow) on first use.
"""
from registry import lazy_attributes

_SOURCES = {
    "FaceLoss": "losses.base", "build_loss": "losses.base", "CenterLoss": "losses.center",
    "center_update": "losses.center", "WithCenterLoss": "losses.combined", "MarginLoss": "losses.margin",
    "combined_margin_logits": "losses.margin", "SoftmaxLoss": "losses.softmax", "AdaFaceLoss": "losses.adaface",
    "MagFaceLoss": "losses.magface", "CurricularFaceLoss": "losses.curricularface",
    "ElasticFaceLoss": "losses.elasticface",
}
__all__ = list(_SOURCES)
__getattr__ = lazy_attributes(__name__, _SOURCES)
