"""`model_card.json`: what an exported embedding model expects, returns, was trained on and scored.

One card per export folder. It describes the source model (input contract, embedding size, the
run's recipe, training-data facts and verification results, the project version and git commit)
and lists every file exported from that model into the folder under `exports`, with its parity
check. Exporting a different model into the same folder starts a new card.
"""
import datetime
import hashlib
import json
import os

from storage.atomic import write_json
from storage.run_folder import RunFolder
from storage.history import read_history
from storage.provenance import git_commit, project_version
from evaluation.verification import bin_name

CARD_NAME = "model_card.json"
PROJECT_NAME = "face-recipes"
TRAINING_DATA_KEYS = ("dataset", "data", "data_resolved", "num_classes", "num_images", "skipped_at_scan",
                      "min_images", "max_classes", "image_size", "augment")


def file_sha256(path):
    """Hex SHA-256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """Verification metrics (`<bin>/<metric>`) of the run from `history.jsonl`; None if it has none.

    {"monitor", "before_training" (the epoch-0 baseline row, if any), "best_epoch", "best",
    "last_epoch", "last"}. The best epoch maximises the monitored metric (`eval_monitor`, default
    `<last bin>/acc`) over trained epochs, as `VerificationCallback` picks the epoch whose
    model it saves as `best_embedding.keras`.
    """
    path = RunFolder(run_dir).history_path
    rows = [row for row in (read_history(path) if os.path.isfile(path) else []) if any("/" in key for key in row)]
    if not rows:
        return None
    bins = recipe.get("eval_bins_resolved") or recipe.get("eval_bins") or []
    monitor = recipe.get("eval_monitor") or (f"{bin_name(bins[-1])}/acc" if bins else None)

    def metrics(row):
        return {key: value for key, value in row.items() if "/" in key} if row else None

    baseline = next((row for row in rows if row.get("epoch") == 0), None)
    trained = [row for row in rows if row.get("epoch", 0) >= 1]
    scored = [row for row in trained if isinstance(row.get(monitor), (int, float))]
    best = max(scored, key=lambda row: row[monitor]) if scored else None
    return {"monitor": monitor, "before_training": metrics(baseline),
            "best_epoch": best["epoch"] if best else None, "best": metrics(best),
            "last_epoch": trained[-1]["epoch"] if trained else None, "last": metrics(trained[-1] if trained else None)}


def source_card(model_path, run_dir, embedder, source_policy):
    """The card's description of the source model (everything but `exports`)."""
    recipe = RunFolder(run_dir).read_config() if run_dir else None
    commit, dirty = git_commit()
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
        "project": {"name": PROJECT_NAME, "version": project_version(), "git_commit": commit, "git_dirty": dirty},
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
