import pytest

import recipes  # noqa: F401  (registers every built-in plugin)
from recipes.cli import resolve_recipe
from recipes.recipe import Recipe, RecipeError


def test_defaults_are_the_specs():
    recipe = resolve_recipe("center_softmax", {})
    assert (recipe.backbone, recipe.embedding_size, recipe.optimizer, recipe.lr, recipe.batch_size) == (
        "resnet50v2", 512, "adamax", 0.001, 128)
    assert recipe.lr_schedule == "constant_then_exponential" and recipe.loss == "center_softmax"


def test_values_are_coerced_as_fire_parses_them():
    recipe = Recipe().replace(epochs=3.0, lr="1e-3", batch_size="16", jit_compile="false", steps_per_epoch="None",
                              eval_bins="[a.bin, b.bin]", augment="flip,brightness", dropout=0)
    assert recipe.epochs == 3 and isinstance(recipe.epochs, int)
    assert recipe.lr == 0.001 and recipe.batch_size == 16 and recipe.jit_compile is False
    assert recipe.steps_per_epoch is None and recipe.dropout == 0.0
    assert recipe.eval_bins == ["a.bin", "b.bin"] and recipe.augment == ["flip", "brightness"]


@pytest.mark.parametrize("field, value, words", [
    ("epochs", 2.5, ["--epochs=2.5", "integer"]),
    ("epochs", 0, ["--epochs=0", "positive"]),
    ("lr", "fast", ["--lr='fast'"]),
    ("lr", -1.0, ["--lr=-1.0", "positive"]),
    ("jit_compile", "maybe", ["--jit_compile", "true or false"]),
    ("dropout", 1.5, ["--dropout=1.5"]),
])
def test_bad_values_are_refused_with_the_field_and_value(field, value, words):
    with pytest.raises(RecipeError) as caught:
        Recipe().replace(**{field: value})
    for word in words:
        assert word in str(caught.value)


def test_unknown_field_suggests_close_fields():
    message = str(pytest.raises(RecipeError, Recipe().replace, epoch=3).value)
    assert "'epoch'" in message and "Did you mean 'epochs'" in message


def test_unknown_registry_names_suggest_close_entries():
    message = str(pytest.raises(RecipeError, Recipe().replace, backbone="tinny").value)
    assert "--backbone='tinny'" in message and "'tiny'" in message
    message = str(pytest.raises(RecipeError, Recipe().replace, backbone=7).value)
    assert "--backbone='7'" in message and "Known" in message


def test_loss_args_are_checked_against_the_loss_signature():
    recipe = Recipe().replace(loss="arcface", **{"loss_args.margin2": "0.5", "loss_args.preset": "cosface"})
    assert recipe.loss_args == {"margin2": 0.5, "preset": "cosface"}
    message = str(pytest.raises(RecipeError, Recipe().replace, loss="arcface", **{"loss_args.margn2": 0.5}).value)
    assert "margn2" in message and "Did you mean 'margin2'" in message
    with pytest.raises(RecipeError, match="margin1"):
        Recipe().replace(loss="softmax", **{"loss_args.margin1": 0.5})


def test_schedule_args_are_checked_and_typed():
    recipe = Recipe().replace(lr_schedule="step", **{"lr_schedule_args.step_epochs": 5.0})
    assert recipe.lr_schedule_args == {"step_epochs": 5} and isinstance(recipe.lr_schedule_args["step_epochs"], int)
    with pytest.raises(RecipeError, match="warmup"):
        Recipe().replace(lr_schedule="step", **{"lr_schedule_args.warmup_epochs": 1})


def test_schedules_follow_their_formulas():
    import math

    from registry import CALLBACKS

    spec = CALLBACKS.build("constant_then_exponential", base_lr=0.001, epochs=20)
    assert spec(0) == spec(9) == 0.001
    assert spec(12) == pytest.approx(0.001 * math.exp(0.2 * (10 - 12)))
    cosine = CALLBACKS.build("cosine", base_lr=1.0, epochs=12, warmup_epochs=1)
    assert cosine(0) == 1.0 and cosine(1) == pytest.approx(1.0) and cosine(11) == pytest.approx(0.0, abs=1e-12)
    assert cosine(6) == pytest.approx(0.5)
    step = CALLBACKS.build("step", base_lr=1.0, epochs=30, step_epochs=10, factor=0.1)
    assert (step(9), step(10), step(25)) == (1.0, pytest.approx(0.1), pytest.approx(0.01))


def test_changing_the_loss_drops_the_old_loss_args():
    cosface = resolve_recipe("cosface", {})
    assert cosface.loss_args == {"preset": "cosface"}
    assert cosface.replace(loss="softmax").loss_args == {}
    assert cosface.replace(**{"loss_args.margin2": 0.2}).loss_args == {"preset": "cosface", "margin2": 0.2}
