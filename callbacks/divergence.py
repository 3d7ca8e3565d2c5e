"""Stop training at the first non-finite loss, naming the epoch and step."""
import math

import keras

from callbacks.options import validate_early_stopping_options
from registry import CALLBACKS


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Checks the loss after every step; on NaN/Inf sets `state.stop_message` and stops training.

    The epoch in which it happened is not checkpointed (`EpochCheckpoint` skips it), so the
    last good checkpoint stays the newest.
    """

    def __init__(self, state):
        super().__init__()
        self.state = state
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.state.stop_message is None:
            self.state.stop_message = (
                f"non-finite loss ({float(loss)}) at epoch {self._epoch + 1}, step {batch + 1}; training stopped. "
                "The last good checkpoint is kept; lower --lr or check the data, then --resume."
            )
            self.model.stop_training = True


@CALLBACKS.register("nan_guard")
def nan_guard(context):
    """Stop at the first non-finite loss; that epoch is not checkpointed."""
    return NonFiniteLossGuard(context.state)


@CALLBACKS.register("early_stopping")
def early_stopping(context, monitor="loss", patience=10, min_delta=0.0):
    """Keras' EarlyStopping: stop when `monitor` has not improved by `min_delta` for `patience` epochs."""
    mode = "min" if monitor.endswith("loss") else "max"
    return keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, min_delta=min_delta, mode=mode)


early_stopping.validate_options = validate_early_stopping_options
