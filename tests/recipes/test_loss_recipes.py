"""The recipes of the loss zoo resolve to their losses and heads with the official defaults."""
import pytest

import recipes  # noqa: F401
from losses import build_loss
from registry import HEADS, RECIPES

EXPECTED = {
    "adaface": ("norm_dense", {"margin": 0.4, "h": 0.333, "scale": 64.0, "t_alpha": 0.01}),
    "magface": ("norm_dense", {"lower_norm": 10.0, "upper_norm": 110.0, "lower_margin": 0.45, "upper_margin": 0.8,
                               "lambda_g": 35.0, "scale": 64.0}),
    "curricularface": ("norm_dense", {"margin": 0.5, "scale": 64.0}),
    "elasticface": ("norm_dense", {"variant": "arc", "margin": 0.5, "sigma": 0.05, "plus": False, "scale": 64.0}),
    "subcenter_arcface": ("subcenter", {"margin1": 1.0, "margin2": 0.0, "margin3": 0.5, "scale": 64.0}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_builds_its_loss_and_head_with_official_defaults(name):
    recipe = RECIPES.build(name)
    recipe.validate()
    head_name, expected = EXPECTED[name]
    assert recipe.head == head_name
    config = build_loss(recipe.loss, 10, 16, **recipe.loss_args).get_config()
    assert {key: config[key] for key in expected} == expected
    head = HEADS.build(recipe.head, num_classes=10, **recipe.head_args)
    head.build((None, 16))
    assert head.kernel.shape == (16, 10 * getattr(head, "k", 1))
    assert getattr(head, "k", 3) == 3


def test_subcenter_k_from_the_command_line():
    recipe = RECIPES.build("subcenter_arcface").replace(**{"head_args.k": "5"})
    head = HEADS.build(recipe.head, num_classes=4, **recipe.head_args)
    head.build((None, 8))
    assert recipe.head_args == {"k": 5} and head.kernel.shape == (8, 20)


@pytest.mark.parametrize("overrides, expected", [
    ({"loss_args.variant": "cos"}, {"margin": 0.35, "sigma": 0.05}),
    ({"loss_args.variant": "cos", "loss_args.plus": "true"}, {"margin": 0.35, "sigma": 0.02}),
    ({"loss_args.plus": "true"}, {"margin": 0.5, "sigma": 0.0175}),
    ({"loss_args.sigma": "0"}, {"margin": 0.5, "sigma": 0.0}),
])
def test_elasticface_variants_from_the_command_line(overrides, expected):
    recipe = RECIPES.build("elasticface").replace(**overrides)
    config = build_loss(recipe.loss, 10, 16, **recipe.loss_args).get_config()
    assert {key: config[key] for key in expected} == expected
