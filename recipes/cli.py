"""The command line: `python -m recipes` or `face-recipes`, with commands list, show, run, eval, compare,
make_bin, data_stats. `--help` anywhere explains the command and every recipe field."""
import json
import os
import sys

from callbacks.run_folder import RunFolder
from recipes.help import help_text
from recipes.plugins import load_plugin
from recipes.recipe import Recipe, RecipeError, parse_list
from recipes.text_table import format_table
from registry import ALL_REGISTRIES, RECIPES, RegistryError, unknown_message


def load_plugins(plugins):
    for plugin in parse_list(plugins or []):
        load_plugin(plugin)


def recipes_of_file(path):
    """{name: recipe function} of the recipes that the Python file `path` registers with `@RECIPES.register`."""
    module = load_plugin(path)
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
        if not os.path.isfile(reference):
            raise FileNotFoundError(f"recipe file {reference!r} does not exist.")
        with open(reference) as file:
            stored = json.load(file)
        load_plugins(stored.get("plugins"))
        return Recipe.from_dict(stored, **overrides)
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
    return RECIPES.build(reference).replace(**overrides)


def resolve_resume(reference, resume, overrides):
    """(recipe, run folder) to continue: `resume` is True (the newest run of the recipe) or a run folder.

    The run's stored recipe (and its plugins) is the base; `overrides` apply on top.
    """
    from recipes.train import find_run_to_resume

    if resume is True:
        named = resolve_recipe(reference, {key: overrides[key] for key in ("runs_dir", "plugins") if key in overrides})
        resume = find_run_to_resume(named.runs_dir, named.name)
    stored = RunFolder(str(resume)).read_config()
    load_plugins(overrides.get("plugins"))
    load_plugins(stored.get("plugins"))
    return Recipe.from_dict(stored, **overrides), str(resume)


class CommandLine:
    """Face-recognition training recipes."""

    def list(self):
        """Print every recipe and every registry (backbones, heads, losses, schedules, callbacks, ...) with its entries."""
        print("\n\n".join(repr(registry) for registry in ALL_REGISTRIES))

    def show(self, recipe, **overrides):
        """Print recipe RECIPE (a name, file.py[:NAME] or recipe.json) with overrides, fully resolved, as JSON.

        The output can be run again: `run shown.json`.
        """
        print(json.dumps(resolve_recipe(recipe, overrides).resolved(), indent=2))

    def run(self, recipe, resume=None, **overrides):
        """Train RECIPE (a name, file.py[:NAME] or recipe.json) with overrides (--FIELD=VALUE, --loss_args.KEY=VALUE).

        --resume continues the newest run of RECIPE under --runs_dir at its next epoch;
        --resume=RUN_DIR continues that run. Overrides then apply on top of its stored recipe
        (e.g. --epochs=300 to train longer).
        """
        from recipes.train import TrainingStopped, train

        if resume not in (None, False):
            resolved, resume_dir = resolve_resume(recipe, resume, overrides)
        else:
            resolved, resume_dir = resolve_recipe(recipe, overrides), None
        try:
            run_dir = train(resolved, resume_dir)
        except TrainingStopped as stopped:
            print(f"stopped: {stopped}", file=sys.stderr)
            sys.exit(stopped.exit_code)
        print(f"done: {run_dir}" if run_dir else "done: worker finished; the chief worker writes the run folder.")

    def eval(self, model, bins, batch_size=128, plugins=()):
        """Evaluate a saved embedding or training model (.keras) on verification .bin files; prints a table."""
        load_plugins(plugins)
        from recipes.evaluate import evaluate_saved_model

        results = evaluate_saved_model(str(model), parse_list(bins), int(batch_size))
        keys = ("acc", "acc_std", "threshold", "best_acc", "best_threshold", "xnorm", "pairs")
        rows = [[name] + (["non-finite embeddings"] + [""] * 6 if metrics is None else
                          [f"{metrics[key]:.4f}" if key != "pairs" else str(int(metrics[key])) for key in keys])
                for name, metrics in results.items()]
        print(format_table(["bin", *keys], rows))
        print("acc/acc_std/threshold: 10-fold insightface protocol (squared-L2 threshold); "
              "best_acc/best_threshold: best cosine threshold on the whole set (optimistic).")

    def compare(self, *run_dirs, metrics=None, out="compare.png"):
        """Compare run folders side by side (table) and plot --metrics per epoch to --out (PNG); no network needed.

        --metrics defaults to each run's monitored `<last bin>/acc` and `loss`.
        """
        from recipes.compare import compare_runs

        table, _ = compare_runs([str(run_dir) for run_dir in run_dirs], parse_list(metrics) if metrics else None,
                                str(out))
        print(table)
        print(f"plot: {out}")

    def make_bin(self, data, pairs=3000, out="my.bin", seed=0, image_size=112):
        """Draw balanced same/different pairs (seeded) from --data (identity or RecordIO folder) into a .bin --out."""
        from data.tools import format_make_bin, make_bin

        print(format_make_bin(make_bin(str(data), int(pairs), str(out), int(seed), int(image_size))))

    def data_stats(self, data, decode=True):
        """Identities, images, images per identity (min/median/max) and unreadable files of --data."""
        from data.tools import data_stats, format_data_stats

        print(format_data_stats(data_stats(str(data), bool(decode))))


def user_errors():
    """The exceptions that mean bad input, printed as one `error:` line (set FACES_DEBUG=1 for tracebacks)."""
    from callbacks.checkpoints import CheckpointError
    from data.bins import BinFormatError
    from recipes.compare import CompareError

    return RecipeError, RegistryError, OSError, BinFormatError, CompareError, CheckpointError


def main(argv=None):
    """Entry point of `python -m recipes` and the `face-recipes` console script."""
    import fire

    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or any(arg in ("--help", "-h") for arg in argv):
        try:
            print(help_text([arg for arg in argv if arg not in ("--help", "-h", "--")]))
        except user_errors() as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        return
    try:
        fire.Fire(CommandLine, command=argv, name="python -m recipes")
    except user_errors() as error:
        if os.environ.get("FACES_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
