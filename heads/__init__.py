"""Classification heads (embedding → class logits), registered in `registry.HEADS`."""
from heads.norm_dense import NormDense
from heads.partial_fc import PartialFC
from heads.subcenter import SubCenterNormDense

__all__ = ["NormDense", "PartialFC", "SubCenterNormDense"]
