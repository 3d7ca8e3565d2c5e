"""Recipes: training runs assembled from registered parts, and the `python -m recipes` command line."""
import backbones  # noqa: F401  (register every built-in plugin)
import callbacks  # noqa: F401
import data  # noqa: F401
import heads  # noqa: F401
import losses  # noqa: F401
from recipes import catalogue  # noqa: F401
from recipes.recipe import Recipe, RecipeError

__all__ = ["Recipe", "RecipeError"]
