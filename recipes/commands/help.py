"""`--help` text, generated from the `CommandLine` docstrings and the `Recipe` fields' own docs."""
import dataclasses
import inspect
import typing

from recipes.recipe import Recipe
from recipes.resolve import resolve_recipe

USAGE = """usage: python -m recipes COMMAND [ARGS] [--FIELD=VALUE ...]     (or: face-recipes COMMAND ...)

A recipe is named in one of three ways:
  arcface                     a registered recipe (see `list`)
  path/to/my_recipes.py[:NAME] a Python file that registers recipes with @RECIPES.register("NAME")
  path/to/recipe.json         `show`'s output or a run's recipe.json

`python -m recipes run RECIPE --help` lists every field with that recipe's values."""


def _type_name(annotation):
    if typing.get_origin(annotation) is typing.Union:
        inner = next(a for a in typing.get_args(annotation) if a is not type(None))
        return f"{inner.__name__}|None"
    return annotation.__name__


def fields_help(recipe):
    """Every field of `recipe`, grouped by topic: `--name=TYPE  value  description`."""
    hints = typing.get_type_hints(Recipe)
    groups = {group: [] for group in ("model", "optimisation", "fine-tuning", "distribution", "data", "run", "tracking")}
    for field in dataclasses.fields(Recipe):
        value = getattr(recipe, field.name)
        shown = "[" + ",".join(value) + "]" if isinstance(value, list) else value
        groups.setdefault(field.metadata.get("group", "other"), []).append(
            (f"--{field.name}={_type_name(hints[field.name])}", str(shown), field.metadata.get("doc", "")))
    width = max(len(row[0]) for rows in groups.values() for row in rows)
    value_width = min(28, max(len(row[1]) for rows in groups.values() for row in rows))
    lines = []
    for group, rows in groups.items():
        lines.append(f"\n{group}:")
        lines += [f"  {flag.ljust(width)}  {value.ljust(value_width)}  {doc}" for flag, value, doc in rows]
    return "\n".join(lines)


def _command_help(name, method):
    signature = str(inspect.signature(method)).replace("(self, ", "(").replace("(self)", "()")
    return f"python -m recipes {name}{signature}\n\n{inspect.getdoc(method)}"


def help_text(args, command_line):
    """The help for the command line `args` (without --help): general, a command's, or a recipe's fields.

    `command_line`: the class whose public methods are the commands.
    """
    commands = {name: getattr(command_line, name) for name in dir(command_line) if not name.startswith("_")}
    if not args or args[0] not in commands:
        listing = "\n".join(f"  {name.ljust(11)} {inspect.getdoc(method).splitlines()[0]}"
                            for name, method in commands.items())
        return f"{USAGE}\n\ncommands:\n{listing}"
    command, rest = args[0], args[1:]
    text = _command_help(command, commands[command])
    if command in ("run", "show"):
        reference = next((arg for arg in rest if not arg.startswith("-")), None)
        overrides = dict(_split_flag(arg) for arg in rest if arg.startswith("--") and "=" in arg)
        overrides.pop("resume", None)
        recipe = resolve_recipe(reference, overrides) if reference else Recipe()
        title = f"fields of recipe {reference!r}" if reference else "recipe fields (defaults)"
        text += f"\n\n{title} (override any with --FIELD=VALUE):" + fields_help(recipe)
    return text


def _split_flag(arg):
    key, _, value = arg[2:].partition("=")
    return key, value
