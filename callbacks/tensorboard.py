"""TensorBoard: Keras' own `TensorBoard` callback, logging the scalars the W&B tracker logs, under the run folder.

    tensorboard --logdir runs/            # every run; or --logdir RUN_DIR/tensorboard for one

Needs the `tensorboard` package (a dependency: TensorFlow 2.21 no longer installs it, and
`tf.summary` writes nothing without it).
"""
import keras
import numpy as np
import tensorflow as tf

from callbacks.options import validate_tensorboard_options
from registry import CALLBACKS

STEP_KEYS = ("loss", "accuracy", "images_per_second")


class TensorBoardTracking(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` writing to `log_dir/train/` the scalars `TrackingCallback` gives W&B:

    - every `log_every_steps` steps (and at every step with a verification in its logs):
      `step/loss`, `step/accuracy`, `step/images_per_second`, `step/lr` and `step/<bin>/<metric>`,
      at x = the optimizer's step count (so a resumed run continues the axis);
    - at each epoch end: the epoch's logs (`loss`, `images_per_second`, `<bin>/acc`, ... as in
      history.jsonl) and `lr`, at x = the epoch number (1 = the first); `baseline` (the untrained
      model's verification), if given, at x = 0.

    Keras' own batch and epoch scalars (`batch_*`, `epoch_*`) are not written (they would repeat
    these on another axis); its other options (histograms, graph, profiling) work as in Keras.
    """

    def __init__(self, log_dir, log_every_steps=50, baseline=None, histogram_freq=0, write_graph=False,
                 profile_batch=0):
        super().__init__(log_dir, histogram_freq=histogram_freq, write_graph=write_graph, update_freq="epoch",
                         profile_batch=profile_batch)
        self.log_every_steps = int(log_every_steps)
        self.baseline = baseline

    def _scalars(self, values, step):
        with self._train_writer.as_default(step=int(step)):
            for name, value in values.items():
                number = np.asarray(value)
                if number.ndim == 0 and np.issubdtype(number.dtype, np.number):
                    tf.summary.scalar(name, float(number))

    def _lr(self):
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._step = int(self.model.optimizer.iterations.numpy())
        if self.baseline:
            self._scalars(self.baseline, 0)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, None)
        logs = logs or {}
        self._step += 1
        verified = {key: value for key, value in logs.items() if "/" in key}
        if verified or (self.log_every_steps and self._step % self.log_every_steps == 0):
            row = {key: logs[key] for key in STEP_KEYS if key in logs}
            self._scalars({f"step/{key}": value for key, value in {**row, "lr": self._lr(), **verified}.items()},
                          self._step)

    def on_epoch_end(self, epoch, logs=None):
        self._scalars({"lr": self._lr(), **(logs or {})}, epoch + 1)
        super().on_epoch_end(epoch, {})
        self._train_writer.flush()

    def close(self, exit_code):
        """Flush and close the event files (the trainer calls this also when training fails)."""
        self._close_writers()


@CALLBACKS.register("tensorboard")
def tensorboard(context, histogram_freq=0, write_graph=False, profile_batch=0):
    """TensorBoard event files in RUN_DIR/tensorboard: per-step and per-epoch scalars, as W&B gets them."""
    if not context.chief:
        return None
    return TensorBoardTracking(context.run.tensorboard_path, context.config["log_every_steps"],
                               baseline=None if context.resumed else context.baseline,
                               histogram_freq=histogram_freq, write_graph=write_graph, profile_batch=profile_batch)


tensorboard.validate_options = validate_tensorboard_options
