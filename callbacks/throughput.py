"""Training speed in images per second, measured on the training steps only (evaluation excluded)."""
import time

import keras

from registry import CALLBACKS


class ThroughputCallback(keras.callbacks.Callback):
    """Adds `images_per_second` to the logs: at each step end (since the previous step's end, i.e.
    one step's rate), and at each epoch end (steps × images per step / seconds from the epoch's
    start to its last step's end, so the epoch-end evaluation is not counted)."""

    def __init__(self, images_per_step):
        super().__init__()
        self.images_per_step = int(images_per_step)
        self._epoch_start = self._last_step_end = time.perf_counter()
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._last_step_end = time.perf_counter()
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if logs is not None and now > self._last_step_end:
            logs["images_per_second"] = self.images_per_step / (now - self._last_step_end)
        self._steps += 1
        self._last_step_end = now

    def on_epoch_end(self, epoch, logs=None):
        seconds = self._last_step_end - self._epoch_start
        if logs is not None and self._steps and seconds > 0:
            logs["images_per_second"] = round(self._steps * self.images_per_step / seconds, 2)


@CALLBACKS.register("throughput")
def throughput(context):
    """Training images per second, per step and per epoch, into the logs (history and W&B)."""
    return ThroughputCallback(context.global_batch)
