"""The local run record: one JSON line per epoch in `history.jsonl`, flushed and fsynced."""
import json
import math
import os
import time

import keras
import numpy as np

from registry import CALLBACKS


def _plain(value):
    """A JSON-safe Python scalar (NaN/Inf become strings so the file stays valid JSON)."""
    value = float(np.asarray(value)) if np.ndim(value) == 0 else value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class RunRecord(keras.callbacks.Callback):
    """Appends `{"epoch", "seconds", "lr", **logs}` to `path` at each epoch end, and at the start
    `{"epoch": 0, **baseline}` (the untrained model's verification) when `baseline` is given.
    Put it after the callbacks that add to the logs."""

    def __init__(self, path, baseline=None):
        super().__init__()
        self.path = path
        self.baseline = baseline
        self._epoch_start = time.time()

    def on_train_begin(self, logs=None):
        if self.baseline:
            self._append({"epoch": 0, **{key: _plain(value) for key, value in self.baseline.items()}})

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "seconds": round(time.time() - self._epoch_start, 3)}
        row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row.update({key: _plain(value) for key, value in (logs or {}).items()})
        self._append(row)

    def _append(self, row):
        with open(self.path, "a") as file:
            file.write(json.dumps(row) + "\n")
            file.flush()
            os.fsync(file.fileno())


@CALLBACKS.register("run_record")
def run_record(context):
    """history.jsonl in the run folder: one JSON row per epoch (row 0: the untrained baseline)."""
    if not context.chief:
        return None
    return RunRecord(context.run.history_path, baseline=None if context.resumed else context.baseline)
