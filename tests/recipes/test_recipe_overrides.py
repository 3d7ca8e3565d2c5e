import json

import pytest

import recipes  # noqa: F401
from recipes.commands.cli import CommandLine
from recipes.resolve import resolve_recipe
from recipes.recipe import Recipe, RecipeError
from registry import LOSSES, RECIPES


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


def test_schedule_args_are_checked_and_typed_and_the_old_name_is_accepted():
    recipe = Recipe().replace(lr_schedule="step", **{"lr_schedule_args.step_epochs": 5.0})
    assert recipe.schedule_args == {"step_epochs": 5} and isinstance(recipe.schedule_args["step_epochs"], int)
    with pytest.raises(RecipeError, match="warmup"):
        Recipe().replace(lr_schedule="step", **{"schedule_args.warmup_epochs": 1})


def test_every_part_args_field_is_checked_against_the_parts_signature():
    recipe = Recipe().replace(optimizer="sgd", **{"optimizer_args.momentum": 0.9, "optimizer_args.nesterov": "true",
                                                  "backbone_args.widths": [8, 8, 8, 8], "backbone": "tiny"})
    assert recipe.optimizer_args == {"momentum": 0.9, "nesterov": True}
    for key, message in (("optimizer_args.momentun", "momentum"), ("head_args.k", "option of head"),
                         ("backbone_args.depth", "option of backbone"), ("callback_args.checkpoint.every", "option")):
        with pytest.raises(RecipeError, match=message):
            Recipe().replace(**{key: 1})
    with pytest.raises(RecipeError, match="Did you mean 'adamax'"):
        Recipe().replace(optimizer="adamx")
    with pytest.raises(RecipeError, match="augmentation 'motion_blur'"):
        Recipe().replace(augment="[flip,motion_blur]")
    with pytest.raises(RecipeError, match="keep_checkpoints"):
        Recipe().replace(keep_checkpoints=0)
    with pytest.raises(RecipeError, match="BIN/acc"):
        Recipe().replace(eval_monitor="lfw/accuracy")


def test_callbacks_can_be_replaced_or_added_to():
    assert Recipe().replace(callbacks="+early_stopping").callbacks[-1] == "early_stopping"
    assert Recipe().replace(callbacks="[nan_guard]").callbacks == ["nan_guard"]
    with pytest.raises(RecipeError, match="callback 'erly_stopping'.*Did you mean 'early_stopping'"):
        Recipe().replace(callbacks="+erly_stopping")
    recipe = Recipe().replace(callbacks="+early_stopping", **{"callback_args.early_stopping.patience": "3"})
    assert recipe.callback_args == {"early_stopping": {"patience": 3}}


def test_center_factor_with_a_center_loss_is_refused_and_validation_does_not_mutate():
    with pytest.raises(RecipeError, match="center loss already"):
        Recipe().replace(loss="center_softmax", center_factor=0.5)
    recipe = Recipe(loss_args={"scale": "32"}, loss="arcface")
    with pytest.raises(RecipeError):
        Recipe(keep_checkpoints=0).validate()
    recipe.validate()
    assert recipe.loss_args == {"scale": "32"}


@pytest.mark.parametrize("name", LOSSES.names())
def test_the_built_in_losses_named_as_holding_a_center_loss_are_those_that_build_one(name):
    from losses.base import build_loss
    from losses.combined import find_center_loss
    from losses.options import CENTER_LOSSES

    assert (name in CENTER_LOSSES) == (find_center_loss(build_loss(name, 4, 8)) is not None)


def test_changing_the_loss_drops_the_old_loss_args():
    cosface = resolve_recipe("cosface", {})
    assert cosface.loss_args == {"preset": "cosface"}
    assert cosface.replace(loss="softmax").loss_args == {}
    assert cosface.replace(**{"loss_args.margin2": 0.2}).loss_args == {"preset": "cosface", "margin2": 0.2}


@pytest.mark.parametrize("name, backbone, lr, weight_decay, epochs, margins", [
    ("ms1mv3_r50", "iresnet50", 0.1, 5e-4, 20, (1.0, 0.0, 0.5)),
    ("ms1mv3_r100", "iresnet100", 0.2, 5e-4, 25, (1.0, 0.0, 0.5)),
    ("glint360k_r50", "iresnet50", 0.1, 1e-4, 20, (1.0, 0.4, 0.0)),
    ("ms1mv3_mbf", "mobilefacenet", 0.1, 1e-4, 40, (1.0, 0.0, 0.5)),
])
def test_arcface_torch_recipes_carry_their_configs(name, backbone, lr, weight_decay, epochs, margins):
    resolved = resolve_recipe(name, {}).resolved()
    assert (resolved["backbone"], resolved["lr"], resolved["epochs"], resolved["batch_size"]) == (backbone, lr, epochs, 128)
    assert resolved["optimizer"] == "sgd" and resolved["optimizer_args"]["momentum"] == 0.9
    assert resolved["optimizer_args"]["weight_decay"] == weight_decay
    assert resolved["lr_schedule"] == "polynomial" and resolved["schedule_args"]["power"] == 2.0  # PolyScheduler's
    assert resolved["optimizer_args"]["weight_decay_mode"] == "coupled"
    assert resolved["optimizer_args"]["weight_decay_exclude"] == [] and resolved["clip_grad_norm"] == 5
    assert resolved["loss_args"]["margin_gradient"] == "exact"
    doc = RECIPES.get(name).__doc__
    for value in ("weight_decay_mode=coupled", "clip_grad_norm=5", "margin_gradient=exact", "power 2",
                  "config.fp16 = True", "clip_grad_norm_(backbone.parameters(), 5)", "self.power = 2"):
        assert value in doc, value
    loss = resolved["loss_args"]
    assert (loss["margin1"], loss["margin2"], loss["margin3"], loss["scale"]) == (*margins, 64.0)
    assert resolved["embedding_size"] == 512
    assert resolved["head"] == ("partial_fc" if name == "glint360k_r50" else "norm_dense")
    assert resolved["mixed_precision"] == "true"


def test_show_prints_the_field_recipes_optimisation(capsys):
    CommandLine().show("ms1mv3_r50")
    shown = json.loads(capsys.readouterr().out)
    assert shown["optimizer_args"]["weight_decay_mode"] == "coupled"
    assert shown["optimizer_args"]["weight_decay_exclude"] == [] and shown["clip_grad_norm"] == 5
    assert shown["loss_args"]["margin_gradient"] == "exact" and shown["mixed_precision"] == "true"
    CommandLine().show("arcface")  # the other recipes keep Keras' decoupled decay and no clipping
    shown = json.loads(capsys.readouterr().out)
    assert shown["optimizer_args"]["weight_decay_mode"] == "decoupled" and shown["clip_grad_norm"] == 0
    assert shown["optimizer_args"]["weight_decay_exclude"] == ["gamma", "beta", "bias", "alpha"]
