"""Classification heads (embedding → class logits), registered in `registry.HEADS`.

The built-in heads are declared in `registry/manifest.py`; their classes are imported on first use.
"""
from registry import lazy_attributes

__all__ = ["NormDense", "PartialFC", "SubCenterNormDense"]
__getattr__ = lazy_attributes(__name__, {"NormDense": "heads.norm_dense", "PartialFC": "heads.partial_fc",
                                         "SubCenterNormDense": "heads.subcenter"})
