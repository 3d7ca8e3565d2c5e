"""Name → object registries, so every plugin is found by a string key.

    from registry import LOSSES

    @LOSSES.register("my_loss")
    class MyLoss(FaceLoss): ...

    LOSSES.build("my_loss", num_classes=10)

The built-in entries are declared from `registry/manifest.py`, so their names, options and summaries
are known without importing them (and TensorFlow); `get`/`build` import an entry's module.
"""
import importlib

from registry import manifest
from registry.errors import UserError
from registry.lazy import import_attribute, lazy_attributes
from registry.registry import Declaration, Registry, RegistryError, did_you_mean, keyword_options, unknown_message

BACKBONES = Registry("backbones")
HEADS = Registry("heads")
LOSSES = Registry("losses")
CALLBACKS = Registry("callbacks")
SCHEDULES = Registry("schedules")
DATASETS = Registry("datasets")
AUGMENTATIONS = Registry("augmentations")
RECIPES = Registry("recipes")

ALL_REGISTRIES = (BACKBONES, HEADS, LOSSES, SCHEDULES, CALLBACKS, DATASETS, AUGMENTATIONS, RECIPES)


def _declare_builtins():
    by_name = {table.name: table for table in ALL_REGISTRIES}
    for name, rows in manifest.ENTRIES.items():
        for row in rows:
            by_name[name].declare(row["name"], row["module"], row["options"], aliases=row["aliases"],
                                  summary=row["summary"], resolver=row["resolver"])


def import_builtins():
    """Import every built-in entry and every module defining a Keras-serializable class of the project, so
    that any saved model of the project loads with `keras.saving.load_model` (imports TensorFlow)."""
    for table in ALL_REGISTRIES:
        table.import_declared()
    for module in manifest.KERAS_MODULES:
        importlib.import_module(module)


_declare_builtins()

__all__ = ["Declaration", "Registry", "RegistryError", "UserError", "ALL_REGISTRIES", "did_you_mean",
           "import_attribute", "import_builtins", "keyword_options", "lazy_attributes", "unknown_message"]
__all__ += [table.name.upper() for table in ALL_REGISTRIES]
