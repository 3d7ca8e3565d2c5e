"""Recipes: training runs assembled from registered parts, and the `python -m recipes` command line.

`import recipes` imports no TensorFlow: the built-in recipes and parts are declared in
`registry/manifest.py` and imported when used. `registry.import_builtins()` imports them all, so that
`keras.saving.load_model` finds every class a saved model of the project holds.
"""
import importlib
import os
import sys

_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGES = ("registry", "storage", "evaluation", "backbones", "heads", "losses", "data", "callbacks")


def _import_project_packages():
    """Import the project's packages ahead of same-named folders or files in the working folder.

    `python -m recipes` puts the working folder first on `sys.path`, so a research folder that
    holds `data/` or `losses.py` would shadow the project's. The project root goes first while
    the packages import; a package that is already imported from elsewhere is refused by name.
    """
    sys.path.insert(0, _PROJECT_ROOT)
    try:
        for name in _PACKAGES:
            module = importlib.import_module(name)
            location = os.path.abspath(getattr(module, "__file__", None) or name)
            if not location.startswith(os.path.join(_PROJECT_ROOT, name)):
                raise ImportError(f"'{name}' was imported from {location}, which shadows face-recipes' own '{name}' "
                                  f"package; rename that file or folder, or run `face-recipes` instead.")
    finally:
        sys.path.remove(_PROJECT_ROOT)


_import_project_packages()

from recipes.recipe import Recipe, RecipeError  # noqa: E402

__all__ = ["Recipe", "RecipeError"]
