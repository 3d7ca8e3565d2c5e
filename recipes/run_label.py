"""The name of a run's folder: the recipe and the parts it overrides, e.g. `arcface+loss=cosface`.

`RunFolder.create` appends `-YYYYmmdd-HHMMSS`; `RunFolder.label_of` reads the label back from the
folder's name (`--resume` looks for the newest run of a recipe by it).
"""
import re

from registry import RECIPES

# The fields whose change makes another model or training: the parts and their options.
LABEL_PARTS = ("backbone", "head", "loss", "optimizer", "lr_schedule")
MAX_LABEL = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def _text(value):
    """`value` as filesystem-safe text: runs of characters other than letters, digits and `._=+-` become `_`."""
    return _UNSAFE.sub("_", str(value)).strip("_") or "_"


def changed_parts(recipe, base):
    """['loss=cosface', 'loss.preset=arcface', ...]: the LABEL_PARTS of `recipe` that differ from `base`
    (a `Recipe`), then their options (`<part>_args`) that differ, in field order."""
    from recipes.recipe import PART_ARGS

    changes = []
    for part in LABEL_PARTS:
        if getattr(recipe, part) != getattr(base, part):
            changes.append(f"{part}={getattr(recipe, part)}")
        args, base_args = getattr(recipe, PART_ARGS[part]), getattr(base, PART_ARGS[part])
        changes += [f"{part}.{key}={value}" for key, value in args.items()
                    if getattr(recipe, part) != getattr(base, part) or base_args.get(key) != value]
    return changes


def run_label(recipe):
    """`<recipe name>[+<change>...]`, filesystem-safe and at most MAX_LABEL characters (changes that do not
    fit are counted: `+3more`). Changes are against the registered recipe of that name (none for an
    unregistered name)."""
    name = _text(recipe.name)
    if recipe.name not in RECIPES:
        return name[:MAX_LABEL]
    changes = [_text(change) for change in changed_parts(recipe, RECIPES.build(recipe.name))]
    label = name
    for number, change in enumerate(changes):
        rest = len(changes) - number
        more = f"+{rest - 1}more" if rest > 1 else ""
        if len(label) + 1 + len(change) + len(more) > MAX_LABEL:
            return f"{label}+{rest}more"[:MAX_LABEL]
        label += f"+{change}"
    return label[:MAX_LABEL]

