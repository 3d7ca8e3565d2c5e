"""`model_card.json`: what an exported embedding model expects, returns, was trained on and scored.

One card per export folder. It describes the source model (input contract, embedding size, the
run's recipe, training-data facts and verification results, the project version and git commit)
and lists every file exported from that model into the folder under `exports`, with its parity
check. Exporting a different model into the same folder starts a new card.
"""
import configparser
import datetime
import hashlib
import json
import os
import subprocess

from callbacks.atomic import write_json
from callbacks.run_record import read_history

CARD_NAME = "model_card.json"
PROJECT_NAME = "face-recipes"
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINING_DATA_KEYS = ("dataset", "data", "data_resolved", "num_classes", "num_images", "skipped_at_scan",
                      "min_images", "max_classes", "image_size", "augment")


def file_sha256(path):
    """Hex SHA-256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def project_version():
    """The version in this checkout's setup.cfg, else the installed distribution's, else None."""
    config = configparser.ConfigParser()
    if config.read(os.path.join(PROJECT_ROOT, "setup.cfg")) and config.has_option("metadata", "version"):
        return config.get("metadata", "version")
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version(PROJECT_NAME)
    except PackageNotFoundError:
        return None


def git_commit(root=PROJECT_ROOT):
    """{"commit": HEAD hash, "dirty": tracked files changed} of the git checkout at `root`; None if not one."""
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
        status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def input_contract(embedder):
    """The input spec of an embedding model: RGB NHWC float32 in 0..255 at its training size; normalisation inside."""
    size = int(embedder.input_shape[1])
    contract = {"name": embedder.inputs[0].name, "shape": [None, size, size, 3], "dtype": "float32",
                "layout": "NHWC", "channels": "RGB", "range": [0.0, 255.0], "normalisation": None}
    rescaling = [layer for layer in embedder.layers if layer.__class__.__name__ == "Rescaling"]
    if rescaling:
        scale, offset = float(rescaling[0].scale), float(rescaling[0].offset)
        contract["normalisation"] = f"inside the model: (x - {-offset / scale:g}) / {1 / scale:g}"
    return contract


def verification_summary(run_dir, recipe):
    """Verification metrics (`<bin>/<metric>`) of the run's best and last epochs from `history.jsonl`; None if none.

    The best epoch maximises the monitored metric (`eval_monitor`, default `<last bin>/acc`,
    as `VerificationCallback` picks it); its model is the run's `best_embedding.keras`.
    """
    path = os.path.join(run_dir, "history.jsonl")
    rows = read_history(path) if os.path.isfile(path) else []
    rows = [row for row in rows if any("/" in key for key in row)]
    if not rows:
        return None
    bins = recipe.get("eval_bins_resolved") or recipe.get("eval_bins") or []
    monitor = recipe.get("eval_monitor") or (f"{os.path.splitext(os.path.basename(bins[-1]))[0]}/acc" if bins else None)

    def metrics(row):
        return {key: value for key, value in row.items() if "/" in key}

    scored = [row for row in rows if isinstance(row.get(monitor), (int, float))]
    best = max(scored, key=lambda row: row[monitor]) if scored else None
    return {"monitor": monitor, "best_epoch": best["epoch"] if best else None, "best": metrics(best) if best else None,
            "last_epoch": rows[-1].get("epoch"), "last": metrics(rows[-1])}


def source_card(model_path, run_dir, embedder, source_policy):
    """The card's description of the source model (everything but `exports`)."""
    recipe = None
    if run_dir and os.path.isfile(os.path.join(run_dir, "recipe.json")):
        with open(os.path.join(run_dir, "recipe.json")) as file:
            recipe = json.load(file)
    return {
        "source": {"model": os.path.abspath(model_path), "sha256": file_sha256(model_path),
                   "run_dir": os.path.abspath(run_dir) if run_dir else None, "dtype_policy": source_policy},
        "input": input_contract(embedder),
        "output": {"shape": [None, int(embedder.output_shape[-1])], "dtype": "float32",
                   "meaning": "raw embedding (not L2-normalised); verification adds the embedding of the "
                              "horizontally flipped image, then L2-normalises"},
        "embedding_size": int(embedder.output_shape[-1]),
        "recipe": recipe,
        "training_data": {key: recipe[key] for key in TRAINING_DATA_KEYS if key in recipe} if recipe else None,
        "verification": verification_summary(run_dir, recipe) if recipe else None,
        "project": {"name": PROJECT_NAME, "version": project_version(), "git": git_commit()},
    }


def write_model_card(folder, source, export_name, export_facts):
    """Add `export_facts` under `exports[export_name]` of `folder/model_card.json` (atomically); returns its path.

    The existing card is kept and extended when it describes the same source file (same SHA-256);
    otherwise it is replaced by a new one.
    """
    path = os.path.join(folder, CARD_NAME)
    card = None
    if os.path.isfile(path):
        with open(path) as file:
            try:
                card = json.load(file)
            except json.JSONDecodeError:
                card = None
    if not card or card.get("source", {}).get("sha256") != source["source"]["sha256"]:
        card = {**source, "exports": {}}
    else:
        card.update(source)
        card.setdefault("exports", {})
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    card["exports"][export_name] = {**export_facts, "created": created}
    write_json(path, card)
    return path
