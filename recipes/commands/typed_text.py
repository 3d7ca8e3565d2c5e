"""Recipe fields of text keep the text typed: `--wandb_group=1e3` is "1e3", not Fire's 1000.0.

Fire parses every `--flag=value` as a Python literal (`1e3` → 1000.0, `007` → 7, `[a,1e3]` → a list
with a float). For the recipe fields typed `str` (or `str | None`) and the lists of names (`list`),
`keep_typed_text` quotes the typed value, so Fire hands it over as it was typed; `Recipe.replace`
then coerces it (a list from `a,b` or `[a,b]`, None from `None`).
"""
import typing

from recipes.recipe import FIELD_ALIASES, Recipe

RECIPE_COMMANDS = ("run", "show")


def text_fields():
    """Names of the `Recipe` fields whose values are text: `str`, `str | None` and `list` (of names)."""
    kept = set()
    for name, annotation in typing.get_type_hints(Recipe).items():
        if typing.get_origin(annotation) is typing.Union:
            annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
        if annotation in (str, list):
            kept.add(name)
    return kept


def keep_typed_text(argv):
    """`argv` with the values of text fields quoted for Fire (`--name=1e3` → `--name='1e3'`), for `run` and
    `show`; other commands' arguments are left as they are."""
    argv = list(argv)
    if not argv or argv[0] not in RECIPE_COMMANDS:
        return argv
    fields = text_fields()
    kept = argv[:1]
    index = 1
    while index < len(argv):
        arg = argv[index]
        name, equals, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        following = argv[index + 1] if index + 1 < len(argv) else None
        if FIELD_ALIASES.get(name, name) not in fields:
            kept.append(arg)
        elif equals:
            kept.append(f"--{name}={value!r}")
        elif following is not None and not following.startswith("--"):
            kept += [arg, repr(following)]
            index += 1
        else:
            kept.append(arg)
        index += 1
    return kept
