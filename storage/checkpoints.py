"""Epoch checkpoints of the whole training state, written atomically, and finding the latest one.

A checkpoint is a folder `checkpoints/epoch-NNNN/` with `model.keras` (weights, loss state
such as centres, optimizer state) and `state.json` (epochs done, best metric, RNG states of
layers such as dropout, tracker run id). It is built under a temporary name and renamed
into place, so a folder with the final name is always complete.
"""
import json
import os
import re
import shutil

import numpy as np

from registry import MissingFileError, UserError
from storage.atomic import fsync_directory, fsync_file, write_json
from storage.run_folder import RunFolder
from storage.training_state import TrainingState

CHECKPOINT_PATTERN = re.compile(r"^epoch-(\d{4,})$")


def rng_states(model):
    """{variable path: list} of the model's variables that are not weights (e.g. dropout seed states)."""
    weight_ids = {id(weight) for weight in model.weights}
    return {
        variable.path: np.asarray(variable.numpy()).tolist()
        for variable in model.variables if id(variable) not in weight_ids
    }


def restore_rng_states(model, states):
    """Assign the values saved by `rng_states` back to the model's variables of the same paths."""
    by_path = {variable.path: variable for variable in model.variables}
    for path, value in states.items():
        if path in by_path:
            by_path[path].assign(np.asarray(value, dtype=by_path[path].dtype))


def list_checkpoints(run_dir):
    """[(epochs done, folder path)] of the complete checkpoints of `run_dir`, oldest first."""
    folder = RunFolder(run_dir).checkpoints_path
    if not os.path.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        match = CHECKPOINT_PATTERN.match(name)
        if match and os.path.isfile(os.path.join(folder, name, "state.json")):
            found.append((int(match.group(1)), os.path.join(folder, name)))
    return sorted(found)


def latest_checkpoint(run_dir):
    """The folder of the newest complete checkpoint of `run_dir`, or None."""
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1][1] if checkpoints else None


def read_state(checkpoint_dir):
    with open(os.path.join(checkpoint_dir, "state.json")) as file:
        return json.load(file)


def write_checkpoint(run_dir, model, state):
    """Write checkpoint `epoch-<state['epoch']>` of `model` and `state` atomically; returns its folder."""
    folder = RunFolder(run_dir).checkpoints_path
    os.makedirs(folder, exist_ok=True)
    final = os.path.join(folder, f"epoch-{state['epoch']:04d}")
    temporary = os.path.join(folder, f".tmp-epoch-{state['epoch']:04d}")
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(temporary)
    model.save(os.path.join(temporary, "model.keras"))
    fsync_file(os.path.join(temporary, "model.keras"))
    write_json(os.path.join(temporary, "state.json"), state)
    fsync_directory(temporary)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(temporary, final)
    fsync_directory(folder)
    return final


class CheckpointError(UserError):
    """No usable checkpoint to resume from; the message names the folder and what was wrong."""


def restore_latest(run_dir, model):
    """Load the newest usable checkpoint of `run_dir` into `model` (built as for a new run, optimizer
    included); returns (its `TrainingState`, [(damaged folder, reason)] of newer ones skipped).

    A checkpoint whose state file does not parse or whose weights do not load is skipped with its
    reason, and the one before it is tried. Raises `CheckpointError` when none is usable.
    """
    damaged = []
    for epoch, folder in reversed(list_checkpoints(run_dir)):
        try:
            state = TrainingState.from_dict(read_state(folder))
            model.load_weights(os.path.join(folder, "model.keras"))
        except Exception as error:  # noqa: BLE001 (any failure to read one checkpoint means: try the previous)
            damaged.append((folder, f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"))
            continue
        restore_rng_states(model, state.rng_states)
        return state, damaged
    reasons = "; ".join(f"{os.path.basename(folder)}: {reason}" for folder, reason in damaged)
    raise CheckpointError(f"run folder {run_dir!r} has no usable checkpoint to resume from"
                          + (f" ({reasons})" if reasons else "") + "; start a new run.")


def find_run_to_resume(runs_dir, name, label=None):
    """The newest run folder of recipe `name` under `runs_dir` that has a checkpoint: among those whose label
    (`RunFolder.label_of`) is `label` when there are any, else among all of the recipe (label `name` or
    `name+...`)."""
    entries = os.listdir(runs_dir) if os.path.isdir(runs_dir) else []
    labels = {entry: RunFolder.label_of(entry) for entry in entries}
    candidates = [entry for entry in entries if labels[entry] is not None
                  and (labels[entry] == name or labels[entry].startswith(f"{name}+"))
                  and list_checkpoints(os.path.join(runs_dir, entry))]
    if not candidates:
        raise MissingFileError(f"no run of recipe {name!r} with a checkpoint under {runs_dir!r}; nothing to resume.")
    candidates = [entry for entry in candidates if labels[entry] == label] or candidates
    return max((os.path.join(runs_dir, entry) for entry in candidates), key=os.path.getmtime)
