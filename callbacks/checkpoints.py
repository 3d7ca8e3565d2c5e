"""`EpochCheckpoint`: the callback that writes the run's checkpoints (see `storage.checkpoints`)."""
import shutil

import keras

from registry import CALLBACKS
from storage.checkpoints import list_checkpoints, rng_states, write_checkpoint


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
