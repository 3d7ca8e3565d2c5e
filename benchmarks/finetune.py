"""Fine-tuning a pretrained face model on real identities: held-out accuracy before and after, with and without
`head_init`, `freeze` and `lr_mult`.

    python -m benchmarks.finetune --weights=w600k_mbf.onnx --backbone=mobilefacenet --data=DIR [--bin=FILE]

`--weights` is the pretrained model: a released `.onnx` file (insightface's model zoo, an
arcface_torch export) or one of our runs' `embedding.keras`; without it the benchmark is
skipped. Without `--bin` the identities of `--data` (DIR/<identity>/<image>) are split: a third
held out as a `.bin` of pairs (`benchmarks.accuracy.real_split`, symbolic links, nothing
copied), the rest fine-tuned on. Every variant runs through `recipes.train.train` with the
`finetune` recipe's settings and only the named fields changed, from the same weights, seed and
data; the numbers are the held-out 10-fold accuracy of the starting model (history row 0) and
after the last epoch.
"""
import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# (label, recipe fields changed from the `finetune` recipe)
VARIANTS = (
    ("weights only: random head, nothing frozen, one rate",
     {"head_init": "random", "freeze": "none", "lr_mult": {}}),
    ("lr_mult.backbone=0.1", {"head_init": "random", "freeze": "none"}),
    ("freeze=backbone for 1 epoch, then all", {"head_init": "random", "freeze": "backbone", "freeze_epochs": 1,
                                               "lr_mult": {}}),
    ("head_init=class_means", {"freeze": "none", "lr_mult": {}}),
    ("class_means + freeze=batchnorm", {"lr_mult": {}}),
    ("finetune recipe at 10x its lr (0.01)", {"lr": 0.01}),
    ("finetune recipe: class_means + freeze=batchnorm + lr_mult.backbone=0.1", {}),
)


def model_facts(path, backbone):
    """(embedding size, image size) of the pretrained model at `path` (.onnx or .keras)."""
    if str(path).lower().endswith(".onnx"):
        from backbones.onnx_import import onnx_embedding_size, onnx_image_size, onnx_steps, read_onnx

        graph = read_onnx(path)
        return onnx_embedding_size(onnx_steps(graph)[0]), onnx_image_size(graph)
    import keras

    model = keras.saving.load_model(path, compile=False)
    return int(model.output_shape[-1]), int(model.input_shape[1])


def run_variant(fields, settings, work_dir, log_path):
    """{'before', 'after', 'after_std', 'best', 'xnorm', 'loss', 'seconds'} of one run of the `finetune` recipe:
    held-out accuracy of the starting model and after the last epoch, the best epoch's (picked on the held-out
    pairs, so optimistic) and the last epoch's mean embedding norm."""
    import contextlib

    from benchmarks.accuracy import last_epoch_metrics
    from recipes.train import train
    from registry import RECIPES
    from storage.history import read_history
    from storage.run_folder import RunFolder

    recipe = RECIPES.build("finetune").replace(**settings, runs_dir=os.path.join(work_dir, "runs"), verbose=0)
    recipe = recipe.replace(**fields)
    started = time.perf_counter()
    with open(log_path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        run_dir = train(recipe)
    bin_name = os.path.splitext(os.path.basename(settings["eval_bins"][0]))[0]
    metrics = last_epoch_metrics(run_dir, bin_name)
    trained = [row for row in read_history(RunFolder(run_dir).history_path) if row["epoch"] > 0]
    return {"before": metrics["untrained_acc"], "after": metrics["acc"], "after_std": metrics["acc_std"],
            "best": max(row[f"{bin_name}/acc"] for row in trained), "xnorm": trained[-1][f"{bin_name}/xnorm"],
            "loss": metrics["loss"], "seconds": time.perf_counter() - started}


def run_benchmark(weights, backbone, data, bin_path=None, epochs=10, batch_size=32, lr=None, variants=VARIANTS,
                  seed=0, progress=print):
    """(rows {variant, before, after, after_std, best, xnorm, loss, seconds}, facts) of fine-tuning `weights` on `data`."""
    from benchmarks.accuracy import real_split

    embedding_size, image_size = model_facts(weights, backbone)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as work_dir:
        facts = {"embedding_size": embedding_size, "image_size": image_size, "epochs": epochs,
                 "batch_size": batch_size}
        if bin_path is None:
            data, bin_path, split = real_split(data, work_dir)
            facts.update(split)
        settings = {"backbone": backbone, "backbone_weights": os.path.abspath(weights), "data": data,
                    "eval_bins": [bin_path], "embedding_size": embedding_size, "image_size": image_size,
                    "epochs": epochs, "batch_size": batch_size, "seed": seed, "eval_batch_size": 128}
        if lr is not None:
            settings["lr"] = lr
        progress(f"fine-tuning {weights} ({backbone}, {embedding_size}-d, {image_size} px) on {data}, "
                 f"held out: {bin_path}")
        for label, fields in variants:
            row = {"variant": label, **run_variant(fields, settings, work_dir, os.path.join(work_dir, "train.log"))}
            rows.append(row)
            progress(f"  {label}: {row['before']:.4f} -> {row['after']:.4f} ({row['seconds']:.0f} s)")
    return rows, facts


def markdown_table(rows):
    lines = ["| variant | held-out acc before | after | ± std (10 folds) | change | best epoch's | final xnorm | "
             "final loss | seconds |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['variant']} | {row['before']:.4f} | {row['after']:.4f} | {row['after_std']:.4f} | "
                     f"{row['after'] - row['before']:+.4f} | {row['best']:.4f} | {float(row['xnorm']):.3g} | "
                     f"{float(row['loss']):.3f} | {row['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.finetune", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="the pretrained model: a released .onnx file or a run's embedding.keras")
    parser.add_argument("--backbone", default="mobilefacenet", help="its registered backbone (default mobilefacenet)")
    parser.add_argument("--data", help="folder of identities to fine-tune on: DIR/<identity>/<image>")
    parser.add_argument("--bin", help="held-out verification .bin (default: a third of --data's identities)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--lr", type=float, help="base learning rate (default: the finetune recipe's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.weights:
        print("skipped: no --weights (a pretrained model file: a released .onnx or a run's embedding.keras)")
        return 0
    for name, path, check in (("--weights", args.weights, os.path.isfile), ("--data", args.data, os.path.isdir)):
        if not path or not check(path):
            parser.error(f"{name}={path!r} does not exist.")
    rows, facts = run_benchmark(args.weights, args.backbone, args.data, args.bin, args.epochs, args.batch_size,
                                args.lr, seed=args.seed)
    print()
    print(markdown_table(rows))
    print()
    print("facts: " + ", ".join(f"{key} {value}" for key, value in facts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
