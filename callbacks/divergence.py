"""Stop training at the first non-finite loss, naming the epoch and step."""
import math

import keras


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Checks the loss after every step; on NaN/Inf sets `message` and stops training.

    The epoch in which it happened is not checkpointed (see `EpochCheckpoint.should_skip`),
    so the last good checkpoint stays the newest.
    """

    def __init__(self):
        super().__init__()
        self.message = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.message is None:
            self.message = (
                f"non-finite loss ({float(loss)}) at epoch {self._epoch + 1}, step {batch + 1}; training stopped. "
                "The last good checkpoint is kept; lower --lr or check the data, then --resume."
            )
            self.model.stop_training = True
