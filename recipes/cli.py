"""The command line: `python -m recipes list | show NAME | run NAME [--field=value ...]`."""
import json
import os
import sys

from recipes.plugins import load_plugin
from recipes.recipe import Recipe, RecipeError, parse_list
from registry import ALL_REGISTRIES, RECIPES, RegistryError


def resolve_recipe(name, overrides):
    """The recipe registered as `name` with `overrides` applied; plugins load first."""
    plugins = parse_list(overrides.get("plugins", []))
    for plugin in plugins:
        load_plugin(plugin)
    return RECIPES.build(str(name)).replace(**overrides)


class CommandLine:
    """Face-recognition training recipes. Commands: list, show, run, eval, compare, make_bin, data_stats."""

    def list(self):
        """Print every recipe and every registry with its entries."""
        print("\n\n".join(repr(registry) for registry in ALL_REGISTRIES))

    def show(self, name, **overrides):
        """Print the fully resolved recipe NAME with overrides (--field=value) applied, as JSON."""
        print(json.dumps(resolve_recipe(name, overrides).to_dict(), indent=2))

    def eval(self, model, bins, batch_size=128, plugins=()):
        """Evaluate a saved embedding or training model (.keras) on verification .bin files; prints a table."""
        for plugin in parse_list(plugins):
            load_plugin(plugin)
        from recipes.evaluate import evaluate_saved_model

        results = evaluate_saved_model(str(model), parse_list(bins), int(batch_size))
        keys = ("acc", "acc_std", "threshold", "best_acc", "best_threshold", "xnorm", "pairs")
        rows = [[name] + (["non-finite embeddings"] + [""] * 6 if metrics is None else
                          [f"{metrics[key]:.4f}" if key != "pairs" else str(int(metrics[key])) for key in keys])
                for name, metrics in results.items()]
        print(_format_table(["bin", *keys], rows))
        print("acc/acc_std/threshold: 10-fold insightface protocol (squared-L2 threshold); "
              "best_acc/best_threshold: best cosine threshold on the whole set (optimistic).")

    def compare(self, *run_dirs, metrics=None, out="compare.png"):
        """Compare run folders side by side (table) and plot --metrics per epoch to --out (PNG); no network needed.

        --metrics defaults to each run's monitored `<last bin>/acc` and `loss`.
        """
        from recipes.compare import CompareError, compare_runs

        try:
            table, _ = compare_runs([str(run_dir) for run_dir in run_dirs], parse_list(metrics) if metrics else None,
                                    str(out))
        except CompareError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
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

    def run(self, name, resume=None, **overrides):
        """Train recipe NAME with overrides (--field=value, --loss_args.key=value).

        --resume continues the newest run of NAME under --runs_dir at its next epoch;
        --resume=RUN_DIR continues that run. Overrides then apply on top of its stored recipe
        (e.g. --epochs=300 to train longer).
        """
        from recipes.train import TrainingStopped, find_run_to_resume, stored_recipe, train

        resume_dir = None
        if resume not in (None, False):
            recipe = resolve_recipe(name, {key: value for key, value in overrides.items() if key == "runs_dir"})
            resume_dir = find_run_to_resume(recipe.runs_dir, recipe.name) if resume is True else str(resume)
            fields = {key: value for key, value in stored_recipe(resume_dir).items() if key in Recipe.field_names()}
            recipe = resolve_recipe(name, {**fields, **overrides})
        else:
            recipe = resolve_recipe(name, overrides)
        try:
            run_dir = train(recipe, resume_dir)
        except TrainingStopped as stopped:
            print(f"stopped: {stopped}", file=sys.stderr)
            sys.exit(stopped.exit_code)
        print(f"done: {run_dir}" if run_dir else "done: worker finished; the chief worker writes the run folder.")


def main(argv=None):
    import fire

    try:
        fire.Fire(CommandLine, command=argv, name="python -m recipes")
    except (RecipeError, RegistryError, FileNotFoundError, ValueError) as error:
        if os.environ.get("FACES_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def _format_table(header, rows):
    """Rows of strings as an aligned plain-text table."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
