"""Recipes: training runs assembled from registered parts, and the `python -m recipes` command line."""
import backbones  # noqa: F401  (register every built-in plugin)
import callbacks  # noqa: F401
import data  # noqa: F401
import heads  # noqa: F401
import losses  # noqa: F401
from recipes import catalogue, face_model  # noqa: F401  (face_model: saved training models load after `import recipes`)
from recipes.recipe import Recipe, RecipeError

__all__ = ["Recipe", "RecipeError"]
