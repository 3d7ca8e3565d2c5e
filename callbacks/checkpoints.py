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

import keras
import numpy as np

from callbacks.atomic import fsync_directory, fsync_file, write_json

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
    folder = os.path.join(run_dir, "checkpoints")
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
    folder = os.path.join(run_dir, "checkpoints")
    os.makedirs(folder, exist_ok=True)
    final = os.path.join(folder, f"epoch-{state['epoch']:04d}")
    temporary = os.path.join(folder, f".tmp-epoch-{state['epoch']:04d}")
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(temporary)
    model.save(os.path.join(temporary, "model.keras"))
    fsync_file(os.path.join(temporary, "model.keras"))
    write_json(os.path.join(temporary, "state.json"), {**state, "rng_states": rng_states(model)})
    fsync_directory(temporary)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(temporary, final)
    fsync_directory(folder)
    return final


class EpochCheckpoint(keras.callbacks.Callback):
    """At each epoch end, checkpoint the training state; keep the newest `keep` and the best.

    `state_fn(epoch_done, logs)` → dict of extra state (best metric, tracker id, ...).
    `best_epoch_fn()` → the epoch whose checkpoint is kept as the best, or None.
    `should_skip()` → True when this epoch must not be checkpointed (e.g. the loss diverged).
    """

    def __init__(self, run_dir, state_fn, keep=3, best_epoch_fn=lambda: None, should_skip=lambda: False):
        super().__init__()
        self.run_dir = run_dir
        self.state_fn = state_fn
        self.keep = max(1, int(keep))
        self.best_epoch_fn = best_epoch_fn
        self.should_skip = should_skip

    def on_epoch_end(self, epoch, logs=None):
        if self.should_skip():
            return
        write_checkpoint(self.run_dir, self.model, {"epoch": epoch + 1, **self.state_fn(epoch + 1, logs or {})})
        self.prune()

    def prune(self):
        """Delete checkpoints older than the newest `keep`, except the best one."""
        checkpoints = list_checkpoints(self.run_dir)
        best = self.best_epoch_fn()
        for epoch, path in checkpoints[:-self.keep]:
            if epoch != best:
                shutil.rmtree(path, ignore_errors=True)
