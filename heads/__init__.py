"""Classification heads (embedding → class logits), registered in `registry.HEADS`."""
from heads.norm_dense import NormDense

__all__ = ["NormDense"]
