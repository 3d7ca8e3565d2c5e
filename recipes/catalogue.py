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


@RECIPES.register("adaface")
def adaface():
    """AdaFace (mk-minchul/AdaFace): m 0.4, h 0.333, s 64, t_alpha 0.01."""
    return Recipe(name="adaface", loss="adaface")


@RECIPES.register("magface")
def magface():
    """MagFace (IrvingMeng/MagFace): l_a 10, u_a 110, l_m 0.45, u_m 0.8, λ_g 35, s 64."""
    return Recipe(name="magface", loss="magface")


@RECIPES.register("curricularface")
def curricularface():
    """CurricularFace (HuangYG123/CurricularFace): m 0.5, s 64, t from 0 with momentum 0.01."""
    return Recipe(name="curricularface", loss="curricularface")


@RECIPES.register("elasticface")
def elasticface():
    """ElasticFace-Arc (fdbtrs/ElasticFace): margin ~ N(0.5, 0.05) per sample, s 64."""
    return Recipe(name="elasticface", loss="elasticface")


@RECIPES.register("subcenter_arcface")
def subcenter_arcface():
    """Sub-center ArcFace (insightface): the subcenter head (k = 3) with ArcFace (1, 0, 0.5), s 64."""
    return Recipe(name="subcenter_arcface", head="subcenter", head_args={"k": 3}, loss="arcface",
                  loss_args={"preset": "arcface"})
