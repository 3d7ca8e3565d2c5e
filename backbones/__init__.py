"""Backbones (image → feature map), registered in `registry.BACKBONES`, and the embedding model.

The built-in backbones are declared in `registry/manifest.py`; their modules (and TensorFlow) are
imported when one is built, and `build_embedding_model` on first use.
"""
from registry import lazy_attributes

__all__ = ["build_embedding_model"]
__getattr__ = lazy_attributes(__name__, {"build_embedding_model": "backbones.embedding"})
