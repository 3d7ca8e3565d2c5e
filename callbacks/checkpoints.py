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
from callbacks.context import TrainingState
from callbacks.run_folder import RunFolder
from registry import CALLBACKS

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


class CheckpointError(RuntimeError):
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


class EpochCheckpoint(keras.callbacks.Callback):
    """Owns the run's checkpoints: `restore` before training, and at each epoch end a checkpoint
    of the training state (weights, optimizer, loss state, `TrainingState`); keeps the newest
    `keep` and the best. An epoch whose loss diverged (`state.stop_message`) is not checkpointed.

    With `chief=False` (a worker taking part in a collective save, see `checkpoint`) it writes
    each checkpoint into `run_dir`, a temporary folder, and deletes it at once.
    """

    def __init__(self, run_dir, state, keep=3, chief=True):
        super().__init__()
        self.run_dir = run_dir
        self.state = state
        self.keep = max(1, int(keep))
        self.chief = chief

    def on_epoch_end(self, epoch, logs=None):
        if self.state.stop_message is not None:
            return
        self.state.epoch = epoch + 1
        self.state.rng_states = rng_states(self.model)
        folder = write_checkpoint(self.run_dir, self.model, self.state.to_dict())
        if self.chief:
            self.prune()
        else:
            shutil.rmtree(folder)

    def prune(self):
        """Delete checkpoints older than the newest `keep`, except the best one."""
        for epoch, path in list_checkpoints(self.run_dir)[:-self.keep]:
            if epoch != self.state.best_epoch:
                shutil.rmtree(path, ignore_errors=True)


@CALLBACKS.register("checkpoint")
def checkpoint(context):
    """Checkpoint the whole training state every epoch (keep the newest --keep_checkpoints and the best).

    The chief writes the checkpoints. With a class-sharded head under multi_worker every worker
    saves too (the save gathers the head's shards with a collective); the others into their
    temporary run folder, deleting each copy (Keras' multi-worker convention).
    """
    if not context.saves_model:
        return None
    return EpochCheckpoint(context.run.path, context.state, context.config["keep_checkpoints"], context.chief)
