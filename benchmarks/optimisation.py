"""What arcface_torch's optimisation changes: weight decay in Keras' (decoupled) or PyTorch's (coupled) meaning, with
and without clipping the backbone's gradient, several seeds, verification accuracy.

Each (weight decay mode, clip, seed) trains the `arcface` recipe with ArcFace's margins (1, 0, 0.5), s 64, through
`recipes.train.train` on the synthetic default dataset (or real faces: `--real=DIR`, split by identity as
`benchmarks.accuracy.real_split`), with the settings of `benchmarks.accuracy` (tiny backbone, 128-d, batch 64) and
the field recipes' optimiser: SGD, momentum 0.9, weight decay 5e-4, polynomial decay of power 2 from lr 0.1. Decoupled
runs exclude BatchNorm/PReLU/biases (our default), coupled ones decay everything (arcface_torch's). Reported: the
held-out `.bin`'s 10-fold accuracy after the last epoch, the final training loss, and the L2 norm of all the
embedding model's trainable weights (what the decay shrinks).

    nice python -m benchmarks.optimisation --seeds=0,1,2 --epochs=10
"""
import argparse
import os
import statistics
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SETTINGS = {"loss_args": {"preset": "arcface", "scale": 64.0}, "optimizer": "sgd", "lr": 0.1,
            "lr_schedule": "polynomial", "schedule_args": {"warmup_epochs": 0.0, "power": 2.0}}
WEIGHT_DECAY = 5e-4
DIVERGED = 3  # `TrainingStopped.exit_code` of a run the NaN guard stopped (recipes.train.finish)
VARIANTS = (  # (label, optimizer_args beyond momentum and weight_decay, clip_grad_norm)
    ("decoupled", {"weight_decay_mode": "decoupled"}, 0.0),
    ("decoupled", {"weight_decay_mode": "decoupled"}, 5.0),
    ("coupled", {"weight_decay_mode": "coupled", "weight_decay_exclude": []}, 0.0),
    ("coupled", {"weight_decay_mode": "coupled", "weight_decay_exclude": []}, 5.0),
)


def weight_norm(run_dir):
    """L2 norm of all trainable weights of the run's saved embedding model."""
    import keras
    import numpy as np

    from storage.run_folder import RunFolder

    model = keras.saving.load_model(RunFolder(run_dir).embedding_path, compile=False)
    return float(np.sqrt(sum(float(np.sum(np.square(weight.numpy()))) for weight in model.trainable_weights)))


def run_variants(seeds, epochs, data=None, eval_bins=(), batch_size=None, progress=print):
    """Rows {mode, clip, seed, acc, loss, untrained_acc, weight_norm, seconds}, one per run (acc None where the
    NaN guard stopped a run)."""
    from benchmarks.accuracy import train_recipe
    from recipes.train import TrainingStopped

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-optimisation-") as work_dir:
        for seed in seeds:
            for mode, options, clip in VARIANTS:
                settings = {**SETTINGS, "seed": seed, "clip_grad_norm": clip,
                            "optimizer_args": {"momentum": 0.9, "weight_decay": WEIGHT_DECAY, **options}}
                try:
                    result = train_recipe("arcface", epochs, work_dir, data, eval_bins, batch_size,
                                          os.path.join(work_dir, "train.log"), **settings)
                except TrainingStopped as stopped:
                    if stopped.exit_code != DIVERGED:
                        raise
                    row = {"mode": mode, "clip": clip, "seed": seed, "acc": None, "loss": None, "untrained_acc": None,
                           "weight_norm": None, "seconds": None, "stopped": str(stopped).splitlines()[0]}
                else:
                    row = {"mode": mode, "clip": clip, "seed": seed, "acc": result["acc"], "loss": result["loss"],
                           "untrained_acc": result["untrained_acc"], "weight_norm": weight_norm(result["run_dir"]),
                           "seconds": result["seconds"]}
                rows.append(row)
                progress(f"  {mode} clip {clip:g} seed {seed}: " + (
                    f"acc {row['acc']:.4f}, loss {row['loss']:.3f}, ‖w‖ {row['weight_norm']:.1f} "
                    f"({row['seconds']:.0f} s)" if row["acc"] is not None else f"stopped: {row['stopped']}"))
    return rows


def format_rows(rows):
    """A markdown table: one line per (mode, clip), accuracies per seed, mean ± std, mean loss and weight norm; then
    the untrained models' accuracy per seed (the same for every variant of a seed)."""
    lines = ["| weight decay | clip_grad_norm | 10-fold acc per seed | mean ± std | final loss (mean) | "
             "‖embedding model weights‖ (mean) |", "|---|---|---|---|---|---|"]
    for mode, _, clip in VARIANTS:
        runs = [row for row in rows if (row["mode"], row["clip"]) == (mode, clip)]
        done = [row for row in runs if row["acc"] is not None]
        accs = [row["acc"] for row in done]
        per_seed = ", ".join(f"{row['acc']:.4f}" if row["acc"] is not None else "diverged" for row in runs)
        spread = statistics.stdev(accs) if len(accs) > 1 else float("nan")
        summary = f"{statistics.mean(accs):.4f} ± {spread:.4f}" if accs else "n/a"
        loss = f"{statistics.mean(row['loss'] for row in done):.3f}" if done else "n/a"
        norm = f"{statistics.mean(row['weight_norm'] for row in done):.1f}" if done else "n/a"
        lines.append(f"| {mode} | {'off' if not clip else f'{clip:g}'} | {per_seed} | {summary} | {loss} | {norm} |")
    untrained = {row["seed"]: row["untrained_acc"] for row in rows if row.get("untrained_acc") is not None}
    if untrained:
        lines.append(f"| untrained | | {', '.join(f'{untrained[seed]:.4f}' for seed in sorted(untrained))} | "
                     f"{statistics.mean(untrained.values()):.4f} | | |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.optimisation", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--real", metavar="DIR", help="real aligned faces DIR/<identity>/<image> instead of synthetic")
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    if args.real:
        from benchmarks.accuracy import real_split

        with tempfile.TemporaryDirectory(prefix="bench-optimisation-real-") as work_dir:
            train_dir, bin_path, facts = real_split(args.real, work_dir)
            print(f"real faces: {facts}")
            rows = run_variants(seeds, args.epochs, train_dir, [bin_path], batch_size=32)
    else:
        rows = run_variants(seeds, args.epochs)
    print(format_rows(rows))


if __name__ == "__main__":
    main()
