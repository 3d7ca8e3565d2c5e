"""The command line: `python -m recipes list | show NAME | run NAME [--field=value ...]`."""
import json
import os
import sys

from recipes.plugins import load_plugin
from recipes.recipe import RecipeError, _to_list
from registry import ALL_REGISTRIES, RECIPES, RegistryError


def resolve_recipe(name, overrides):
    """The recipe registered as `name` with `overrides` applied; plugins load first."""
    plugins = _to_list(overrides.get("plugins", []))
    for plugin in plugins:
        load_plugin(plugin)
    return RECIPES.build(str(name)).replace(**overrides)


class CommandLine:
    """Face-recognition training recipes. Commands: list, show, run."""

    def list(self):
        """Print every recipe and every registry with its entries."""
        print("\n\n".join(repr(registry) for registry in ALL_REGISTRIES))

    def show(self, name, **overrides):
        """Print the fully resolved recipe NAME with overrides (--field=value) applied, as JSON."""
        print(json.dumps(resolve_recipe(name, overrides).to_dict(), indent=2))

    def run(self, name, **overrides):
        """Train recipe NAME with overrides (--field=value, --loss_args.key=value); prints the run folder."""
        recipe = resolve_recipe(name, overrides)
        from recipes.train import train

        run_dir = train(recipe)
        print(f"done: {run_dir}")


def main(argv=None):
    import fire

    try:
        fire.Fire(CommandLine, command=argv, name="python -m recipes")
    except (RecipeError, RegistryError, FileNotFoundError) as error:
        if os.environ.get("FACES_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
