"""Does mixed precision change what a run learns? Verification accuracy in float32 vs mixed precision over several seeds.

Each (recipe, precision, seed) trains through `recipes.train.train` on the synthetic default
dataset with the settings of `benchmarks.accuracy` (tiny backbone unless `--backbone`, 10
epochs), `--mixed_precision=false` against `--mixed_precision=true` (mixed_bfloat16 on a CPU,
mixed_float16 on a GPU); the head, the losses and the embedding BatchNorm stay float32 in both.
The reported number is the held-out `verify.bin`'s 10-fold accuracy after the last epoch.
Mixed precision is at parity when the difference of the two means lies within the float32
runs' own seed-to-seed spread (their sample standard deviation): the change it makes is then
no larger than what changing the seed does. The Welch t-test p-value beside it says how likely
a difference this large is when both precisions have one mean.

    python -m benchmarks.precision_parity --seeds=0,1,2 softmax arcface
"""
import argparse
import os
import statistics
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PRECISIONS = ("false", "true")


def run_parity(recipes, seeds, epochs, backbone="tiny", progress=print):
    """Rows {recipe, backbone, precision ('false'|'true'), seed, acc, loss, seconds}, one per run."""
    from benchmarks.accuracy import train_recipe

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-parity-") as work_dir:
        for recipe in recipes:
            for seed in seeds:
                for precision in PRECISIONS:
                    result = train_recipe(recipe, epochs, work_dir, log_path=os.path.join(work_dir, "train.log"),
                                          backbone=backbone, seed=seed, mixed_precision=precision)
                    rows.append({"recipe": recipe, "backbone": backbone, "precision": precision, "seed": seed,
                                 "acc": result["acc"], "loss": result["loss"], "seconds": result["seconds"]})
                    progress(f"  {recipe} {backbone} seed {seed} mixed_precision={precision}: acc {result['acc']:.4f}, "
                             f"loss {result['loss']:.3f} ({result['seconds']:.0f} s)")
    return rows


def _spread(values):
    """Sample standard deviation of `values`, nan for a single run (no spread measured)."""
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def summarise(rows):
    """One summary per (recipe, backbone): accuracies per precision, means, spreads, difference, its Welch t-test
    p-value (could the two precisions share one mean?) and the verdict."""
    import scipy.stats

    summaries = []
    for key in dict.fromkeys((row["recipe"], row["backbone"]) for row in rows):
        accs = {precision: [row["acc"] for row in rows if (row["recipe"], row["backbone"]) == key
                            and row["precision"] == precision] for precision in PRECISIONS}
        means = {precision: statistics.mean(values) for precision, values in accs.items()}
        spreads = {precision: _spread(values) for precision, values in accs.items()}
        difference = means["true"] - means["false"]
        p_value = float(scipy.stats.ttest_ind(accs["true"], accs["false"], equal_var=False).pvalue)
        summaries.append({"recipe": key[0], "backbone": key[1], "float32": accs["false"], "mixed": accs["true"],
                          "float32_mean": means["false"], "mixed_mean": means["true"],
                          "float32_spread": spreads["false"], "mixed_spread": spreads["true"],
                          "difference": difference, "p_value": p_value,
                          "at_parity": abs(difference) <= spreads["false"]})
    return summaries


def format_summaries(summaries, mixed="mixed_bfloat16"):
    """A markdown table of `summarise`'s output."""
    lines = [f"| recipe | backbone | float32 acc per seed | {mixed} acc per seed | float32 mean ± std | {mixed} mean "
             f"± std | difference | Welch p | within float32's seed spread? |", "|---|---|---|---|---|---|---|---|---|"]
    for item in summaries:
        per_seed = {name: ", ".join(f"{acc:.4f}" for acc in item[name]) for name in ("float32", "mixed")}
        lines.append(f"| {item['recipe']} | {item['backbone']} | {per_seed['float32']} | {per_seed['mixed']} | "
                     f"{item['float32_mean']:.4f} ± {item['float32_spread']:.4f} | {item['mixed_mean']:.4f} ± "
                     f"{item['mixed_spread']:.4f} | {item['difference']:+.4f} | {item['p_value']:.2f} | "
                     f"{'yes' if item['at_parity'] else '**no**'} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.precision_parity", description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", default=["softmax", "arcface"])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--backbone", default="tiny")
    args = parser.parse_args(argv)
    import tensorflow as tf

    rows = run_parity(args.recipes, [int(seed) for seed in args.seeds.split(",")], args.epochs, args.backbone)
    mixed = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    print(format_summaries(summarise(rows), mixed))


if __name__ == "__main__":
    main()
