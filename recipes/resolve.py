"""From a recipe reference on the command line (a name, a `.py` file, a `.json` file or a run folder to
resume) plus overrides to the `Recipe` to run, loading the plugins it names."""
from recipes.plugins import load_plugin, load_plugins
from recipes.recipe import Recipe, RecipeError
from recipes.run_label import run_label
from registry import RECIPES, unknown_message
from registry.registry import where_defined
from storage.checkpoints import find_run_to_resume
from storage.json_files import read_json_object
from storage.run_folder import RunFolder


def recipes_of_file(path):
    """{name: recipe function} of the recipes that the Python file `path` registers with `@RECIPES.register`."""
    module = load_plugin(path, what="recipe file")
    return {name: RECIPES.get(name) for name in RECIPES.names() if RECIPES.get(name).__module__ == module.__name__}


def resolve_recipe(reference, overrides):
    """The recipe named by `reference` with `overrides` (field → value) applied; `--plugins` load first.

    `reference` is a registered name (`arcface`), a Python file that registers recipes
    (`my_recipes.py`, or `my_recipes.py:NAME` when it registers several), or a JSON file of
    recipe fields (`show`'s output, or a run's `recipe.json`, whose plugins load too).
    """
    load_plugins(overrides.get("plugins"))
    reference = str(reference)
    if reference.endswith(".json"):
        stored = read_json_object(reference, "recipe file")
        load_plugins(stored.get("plugins"))
        return Recipe.from_dict(stored, overrides, source=f"recipe file {reference!r}")
    path, separator, name = reference.partition(".py:")
    if separator or reference.endswith(".py"):
        path = path + ".py" if separator else reference
        defined = recipes_of_file(path)
        if not name and len(defined) != 1:
            raise RecipeError(f"{path} registers {len(defined)} recipes ({', '.join(defined) or 'none'}); "
                              f"name one as {path}:NAME" if defined else
                              f"{path} registers no recipe; decorate a function returning a Recipe with "
                              "@RECIPES.register('name').")
        name = name or next(iter(defined))
        if name not in defined:
            raise RecipeError(f"{reference}: " + unknown_message(f"recipe of {path}", name, defined))
        reference = name
    return build_recipe(reference).replace(**overrides)


def build_recipe(name):
    """The `Recipe` that the function registered as `name` returns; RecipeError when it returns something else."""
    recipe = RECIPES.build(name)
    if not isinstance(recipe, Recipe):
        raise RecipeError(f"recipe {name!r} ({where_defined(RECIPES.get(name))}) returned a "
                          f"{type(recipe).__name__}, not a Recipe: return Recipe(name=..., ...) "
                          "(from recipes.recipe import Recipe).")
    return recipe


def resolve_resume(reference, resume, overrides):
    """(recipe, run folder) to continue: `resume` is True (the newest run of the recipe, preferring those whose
    folder is named as `reference` with `overrides` would name it, `run_label`) or a run folder.

    The run's stored recipe (and its plugins) is the base; `overrides` apply on top.
    """
    if resume is True:
        named = resolve_recipe(reference, overrides)
        resume = find_run_to_resume(named.runs_dir, named.name, run_label(named))
    run = RunFolder(str(resume))
    stored = run.read_config()
    load_plugins(overrides.get("plugins"))
    load_plugins(stored.get("plugins"))
    return Recipe.from_dict(stored, overrides, source=f"run {run.path!r} ({run.RECIPE})"), str(resume)
