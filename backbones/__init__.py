"""Backbones (image → feature map), registered in `registry.BACKBONES`, and the embedding model."""
from backbones import applications, iresnet, mobilefacenet, tiny  # noqa: F401  (registers the backbones)
from backbones.embedding import build_embedding_model

__all__ = ["build_embedding_model"]
