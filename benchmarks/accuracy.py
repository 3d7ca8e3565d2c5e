"""Verification accuracy of the recipes, trained the same way on the same data.

Each recipe (the spec's four, then adaface, magface, curricularface, elasticface,
subcenter_arcface) runs through
`recipes.train.train` — the same code path as `python -m recipes run NAME` — with the
tiny backbone, the same seed, epochs, batch, learning rate and schedule, in a temporary
runs folder. The number reported is the held-out `.bin`'s 10-fold accuracy after the last
epoch (insightface protocol), with its std over folds and the optimistic whole-set
best-threshold accuracy the spec prints, and the run's untrained accuracy (history row 0), so the
gain over it shows that the recipe trains.

`real_split` turns a folder of real aligned faces (`DIR/<identity>/<image>`) into a
training folder of some identities (symbolic links in a temporary folder, nothing copied)
and a `.bin` of pairs drawn only from the other, held-out identities.
"""
import contextlib
import os
import tempfile
import time

import numpy as np

from storage.run_folder import RunFolder
from storage.history import read_history
from data.bins import write_bin
from data.folders import scan_identity_folder
from registry import RECIPES

ACCURACY_RECIPES = ("softmax", "arcface", "center_softmax", "center_arcface", "adaface", "magface", "curricularface",
                    "elasticface", "subcenter_arcface")
TRAINING_SETTINGS = {  # the `make demo` settings: small enough for a CPU, the same for every recipe
    "backbone": "tiny", "embedding_size": 128, "batch_size": 64, "lr_schedule": "constant", "lr": 0.002, "seed": 0,
}


def last_epoch_metrics(run_dir, bin_name):
    """{'acc', 'acc_std', 'best_acc', 'loss', 'accuracy', 'epochs', 'untrained_acc'} from the run's history.jsonl:
    the last row, and row 0 (the untrained model's verification; None if the run has none)."""
    history = read_history(RunFolder(run_dir).history_path)
    rows = [row for row in history if row["epoch"] > 0]
    untrained = next((row for row in history if row["epoch"] == 0), {})
    last = rows[-1]
    return {
        "acc": last.get(f"{bin_name}/acc"), "acc_std": last.get(f"{bin_name}/acc_std"),
        "best_acc": last.get(f"{bin_name}/best_acc"), "loss": last.get("loss"), "accuracy": last.get("accuracy"),
        "epochs": len(rows), "untrained_acc": untrained.get(f"{bin_name}/acc"),
    }


def train_recipe(name, epochs, work_dir, data=None, eval_bins=(), batch_size=None, log_path=None, **settings):
    """Train recipe `name` with TRAINING_SETTINGS (updated by `settings`) for `epochs`; returns
    `last_epoch_metrics` (+ seconds, run_dir: the run folder under `work_dir`)."""
    from recipes.train import train

    overrides = {**TRAINING_SETTINGS, **settings, "epochs": epochs, "runs_dir": os.path.join(work_dir, "runs"),
                 "verbose": 0}
    if batch_size:
        overrides["batch_size"] = batch_size
    if data is not None:
        overrides.update(data=data, eval_bins=list(eval_bins))
    recipe = RECIPES.build(name).replace(**overrides)
    started = time.perf_counter()
    with open(log_path or os.devnull, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        run_dir = train(recipe)
    bin_name = os.path.splitext(os.path.basename(eval_bins[0]))[0] if eval_bins else "verify"
    return {**last_epoch_metrics(run_dir, bin_name), "seconds": time.perf_counter() - started, "run_dir": run_dir}


def real_split(root, work_dir, held_out_fraction=1 / 3, pairs=300, seed=0):
    """(train folder of symlinked identities, held-out `.bin` path, facts) for the real faces under `root`.

    Identities are shuffled with `seed`; `held_out_fraction` of them (at least 2) give the
    pairs, half same-identity and half different, no image paired with itself.
    """
    folder = scan_identity_folder(root, cache=False, progress=False)
    names = np.array(folder.class_names)
    order = np.random.default_rng(seed).permutation(len(names))
    held_count = max(2, int(round(len(names) * held_out_fraction)))
    held, trained = sorted(names[order[:held_count]]), sorted(names[order[held_count:]])
    if len(trained) < 2:
        raise ValueError(f"{root!r} has {len(names)} identities; need at least 4 to train on some and hold out 2.")
    train_dir = os.path.join(work_dir, "real-train")
    os.makedirs(train_dir)
    for name in trained:
        os.symlink(os.path.abspath(os.path.join(root, name)), os.path.join(train_dir, name))
    by_identity = [[path for path, label in zip(folder.paths, folder.labels) if folder.class_names[label] == name]
                   for name in held]
    rng = np.random.default_rng((seed, 1))
    chosen = set()
    while len(chosen) < pairs // 2:
        identity = rng.integers(len(by_identity))
        first, second = rng.choice(len(by_identity[identity]), 2, replace=False)
        chosen.add((by_identity[identity][first], by_identity[identity][second], True))
    while len(chosen) < 2 * (pairs // 2):
        first_identity, second_identity = rng.choice(len(by_identity), 2, replace=False)
        chosen.add((by_identity[first_identity][rng.integers(len(by_identity[first_identity]))],
                    by_identity[second_identity][rng.integers(len(by_identity[second_identity]))], False))
    ordered = [sorted(chosen)[index] for index in rng.permutation(len(chosen))]
    encoded = []
    for first, second, _ in ordered:
        for path in (first, second):
            with open(path, "rb") as file:
                encoded.append(file.read())
    bin_path = os.path.join(work_dir, "real-heldout.bin")
    write_bin(bin_path, encoded, [issame for _, _, issame in ordered])
    train_images = len(scan_identity_folder(train_dir, cache=False, progress=False))
    facts = {"train_identities": len(trained), "train_images": train_images,
             "held_out_identities": len(held), "pairs": len(ordered)}
    return train_dir, bin_path, facts


def run_accuracy(epochs, data=None, eval_bins=(), batch_size=None, recipes=ACCURACY_RECIPES, progress=print,
                 label="synthetic"):
    """Rows {recipe, acc, acc_std, best_acc, loss, accuracy, epochs, untrained_acc, seconds}, one per recipe."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as work_dir:
        for name in recipes:
            result = train_recipe(name, epochs, work_dir, data, eval_bins, batch_size,
                                  os.path.join(work_dir, "train.log"))
            result.pop("run_dir")  # a temporary folder: not a result
            row = {"recipe": name, **result}
            rows.append(row)
            untrained = "n/a" if row["untrained_acc"] is None else f"{row['untrained_acc']:.4f}"
            progress(f"  accuracy ({label}) {name}: 10-fold acc {row['acc']:.4f} ± {row['acc_std']:.4f} after "
                     f"{row['epochs']} epochs, untrained {untrained} ({row['seconds']:.0f} s)")
    return rows


def run_real_accuracy(root, epochs, batch_size=32, progress=print):
    """(rows as `run_accuracy`, split facts) on real faces under `root`, split by identity."""
    with tempfile.TemporaryDirectory(prefix="bench-real-") as work_dir:
        train_dir, bin_path, facts = real_split(root, work_dir)
        progress(f"  real faces: {facts['train_identities']} identities ({facts['train_images']} images) to train, "
                 f"{facts['held_out_identities']} held out ({facts['pairs']} pairs)")
        rows = run_accuracy(epochs, train_dir, [bin_path], batch_size, progress=progress, label="real")
    return rows, facts
