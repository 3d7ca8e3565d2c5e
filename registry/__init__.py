"""Name → object registries, so every plugin is found by a string key.

    from registry import LOSSES

    @LOSSES.register("my_loss")
    class MyLoss(FaceLoss): ...

    LOSSES.build("my_loss", num_classes=10)
"""
from registry.errors import MissingFileError, OptionError, UserError
from registry.options import check_range, real_number, validate_part_options, whole_number
from registry.registry import Registry, RegistryError, close_matches, did_you_mean, keyword_options, unknown_message

BACKBONES = Registry("backbones")
HEADS = Registry("heads")
LOSSES = Registry("losses")
CALLBACKS = Registry("callbacks")
SCHEDULES = Registry("schedules")
DATASETS = Registry("datasets")
AUGMENTATIONS = Registry("augmentations")
RECIPES = Registry("recipes")

ALL_REGISTRIES = (BACKBONES, HEADS, LOSSES, SCHEDULES, CALLBACKS, DATASETS, AUGMENTATIONS, RECIPES)

__all__ = ["Registry", "RegistryError", "UserError", "MissingFileError", "OptionError", "ALL_REGISTRIES", "check_range",
           "close_matches", "did_you_mean", "keyword_options", "real_number", "unknown_message",
           "validate_part_options", "whole_number"] + [r.name.upper() for r in ALL_REGISTRIES]
