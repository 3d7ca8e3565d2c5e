"""Classification heads (embedding → class logits), registered in `registry.HEADS`."""
from heads.norm_dense import NormDense
from heads.subcenter import SubCenterNormDense

__all__ = ["NormDense", "SubCenterNormDense"]
