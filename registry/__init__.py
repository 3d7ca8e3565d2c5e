"""Name → object registries, so every plugin is found by a string key.

    from registry import LOSSES

    @LOSSES.register("my_loss")
    class MyLoss(FaceLoss): ...

    LOSSES.build("my_loss", num_classes=10)
"""
from registry.errors import UserError
from registry.registry import Registry, RegistryError, did_you_mean, keyword_options, unknown_message

BACKBONES = Registry("backbones")
HEADS = Registry("heads")
LOSSES = Registry("losses")
CALLBACKS = Registry("callbacks")
SCHEDULES = Registry("schedules")
DATASETS = Registry("datasets")
AUGMENTATIONS = Registry("augmentations")
RECIPES = Registry("recipes")

ALL_REGISTRIES = (BACKBONES, HEADS, LOSSES, SCHEDULES, CALLBACKS, DATASETS, AUGMENTATIONS, RECIPES)

__all__ = ["Registry", "RegistryError", "UserError", "ALL_REGISTRIES", "did_you_mean", "keyword_options", "unknown_message"] + [r.name.upper() for r in ALL_REGISTRIES]
