"""The built-in recipes, registered in `registry.RECIPES`: each returns a `Recipe`."""
from recipes.recipe import Recipe
from registry import RECIPES


@RECIPES.register("softmax")
def softmax():
    """Softmax cross-entropy on NormDense logits (the spec's first model)."""
    return Recipe(name="softmax", loss="softmax")


@RECIPES.register("arcface")
def arcface():
    """Combined-margin ArcFace with the spec's margins (0.9, 0.4, 0.15), s = 64."""
    return Recipe(name="arcface", loss="arcface")


@RECIPES.register("cosface")
def cosface():
    """CosFace: margins (1, 0.35, 0), s = 64."""
    return Recipe(name="cosface", loss="arcface", loss_args={"preset": "cosface"})


@RECIPES.register("center_softmax")
def center_softmax():
    """Softmax + center loss (factor 1, centre step 0.5)."""
    return Recipe(name="center_softmax", loss="center_softmax")


@RECIPES.register("center_arcface")
def center_arcface():
    """Combined-margin ArcFace + center loss (factor 1, centre step 0.5)."""
    return Recipe(name="center_arcface", loss="center_arcface")
