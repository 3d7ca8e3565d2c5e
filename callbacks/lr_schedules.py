"""Learning-rate schedules, registered in `registry.CALLBACKS`.

Each entry takes (base_lr, epochs, **options) and returns either a function epoch → lr (run by
`LearningRateScheduler`, so the lr follows from the epoch alone and resumes exactly) or a
Keras callback that sets the lr itself (reduce_on_plateau; its patience counter restarts on resume).
"""
import inspect
import math

import keras

from registry import CALLBACKS


@CALLBACKS.register("constant_then_exponential")
def constant_then_exponential(base_lr, epochs, constant_epochs=10, decay=0.2):
    """The spec's: lr = base for epoch < constant_epochs, then base · exp(decay · (constant_epochs − epoch))."""
    return lambda epoch: base_lr if epoch < constant_epochs else base_lr * math.exp(decay * (constant_epochs - epoch))


@CALLBACKS.register("constant")
def constant(base_lr, epochs):
    """lr = base for every epoch."""
    return lambda epoch: base_lr


@CALLBACKS.register("cosine")
def cosine(base_lr, epochs, warmup_epochs=0, min_lr=0.0):
    """Linear warm-up from base/warmup to base over `warmup_epochs`, then cosine decay to `min_lr` at the last epoch."""

    def lr(epoch):
        if epoch < warmup_epochs:
            return base_lr * (epoch + 1) / warmup_epochs
        progress = (epoch - warmup_epochs) / max(1, epochs - warmup_epochs - 1)
        return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))

    return lr


@CALLBACKS.register("step")
def step(base_lr, epochs, step_epochs=10, factor=0.1):
    """lr = base · factor^(epoch // step_epochs)."""
    return lambda epoch: base_lr * factor ** (epoch // step_epochs)


@CALLBACKS.register("reduce_on_plateau")
def reduce_on_plateau(base_lr, epochs, monitor="loss", factor=0.1, patience=5, min_lr=0.0):
    """lr × factor when `monitor` has not improved for `patience` epochs (a Keras ReduceLROnPlateau)."""
    mode = "min" if monitor.endswith("loss") else "max"
    return keras.callbacks.ReduceLROnPlateau(monitor, factor=factor, patience=patience, min_lr=min_lr, mode=mode)


def schedule_options(name):
    """Options (name → default) of the schedule registered as `name`, besides base_lr and epochs."""
    params = inspect.signature(CALLBACKS.get(name)).parameters
    return {key: p.default for key, p in params.items() if key not in ("base_lr", "epochs")}


def schedule_callback(name, base_lr, epochs, **options):
    """A `keras.callbacks.LearningRateScheduler` running the schedule registered as `name`."""
    schedule = CALLBACKS.build(name, base_lr=base_lr, epochs=epochs, **options)
    if isinstance(schedule, keras.callbacks.Callback):
        return schedule
    return keras.callbacks.LearningRateScheduler(lambda epoch, lr: float(schedule(epoch)))
