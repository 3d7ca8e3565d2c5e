"""Learning-rate schedules, registered in `registry.SCHEDULES`, evaluated at every optimizer step.

An entry is called as `entry(base_lr, epochs, steps_per_epoch, **options)` and returns a
`keras.optimizers.schedules.LearningRateSchedule` of the optimizer's step count (`iterations`,
saved in every checkpoint, so a resume continues the schedule exactly, even mid-epoch), or, for
`reduce_on_plateau`, a Keras callback that changes a constant rate between epochs.
"""
import math

import keras
import tensorflow as tf

from recipes.schedule_options import (validate_cosine_options, validate_exponential_options, validate_plateau_options,
                                      validate_polynomial_options, validate_step_options)
from registry import SCHEDULES


class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Base: lr as a function of the 0-based step `t` (updates done), from `base_lr`, `epochs`, `steps_per_epoch`."""

    def __init__(self, base_lr, epochs, steps_per_epoch):
        self.base_lr = float(base_lr)
        self.epochs = int(epochs)
        self.steps_per_epoch = max(1, int(steps_per_epoch))

    @property
    def total_steps(self):
        return self.epochs * self.steps_per_epoch

    def epoch(self, step):
        """The 0-based epoch that step `step` belongs to (float tensor)."""
        return tf.floor(step / self.steps_per_epoch)

    def __call__(self, step):
        return self.rate(tf.cast(step, tf.float32))

    def rate(self, step):
        raise NotImplementedError

    def get_config(self):
        return {"base_lr": self.base_lr, "epochs": self.epochs, "steps_per_epoch": self.steps_per_epoch}


@SCHEDULES.register("constant")
@keras.saving.register_keras_serializable(package="faces")
class Constant(StepSchedule):
    """lr = base at every step."""

    def rate(self, step):
        return tf.fill(tf.shape(step), self.base_lr)


@SCHEDULES.register("constant_then_exponential")
@keras.saving.register_keras_serializable(package="faces")
class ConstantThenExponential(StepSchedule):
    """The spec's, per epoch e: lr = base for e < constant_epochs, then base · exp(decay · (constant_epochs − e))."""

    def __init__(self, base_lr, epochs, steps_per_epoch, constant_epochs=10, decay=0.2):
        super().__init__(base_lr, epochs, steps_per_epoch)
        self.validate_options(constant_epochs=constant_epochs, decay=decay)
        self.constant_epochs = int(constant_epochs)
        self.decay = float(decay)

    validate_options = staticmethod(validate_exponential_options)

    def rate(self, step):
        epoch = self.epoch(step)
        decayed = self.base_lr * tf.exp(self.decay * (self.constant_epochs - epoch))
        return tf.where(epoch < self.constant_epochs, self.base_lr, decayed)

    def get_config(self):
        return {**super().get_config(), "constant_epochs": self.constant_epochs, "decay": self.decay}


@SCHEDULES.register("step")
@keras.saving.register_keras_serializable(package="faces")
class StepDecay(StepSchedule):
    """lr = base · factor^⌊e / step_epochs⌋ for epoch e = ⌊t / steps_per_epoch⌋."""

    def __init__(self, base_lr, epochs, steps_per_epoch, step_epochs=10, factor=0.1):
        super().__init__(base_lr, epochs, steps_per_epoch)
        self.validate_options(step_epochs=step_epochs, factor=factor)
        self.step_epochs = int(step_epochs)
        self.factor = float(factor)

    validate_options = staticmethod(validate_step_options)

    def rate(self, step):
        return self.base_lr * tf.pow(self.factor, tf.floor(self.epoch(step) / self.step_epochs))

    def get_config(self):
        return {**super().get_config(), "step_epochs": self.step_epochs, "factor": self.factor}


@SCHEDULES.register("cosine")
@keras.saving.register_keras_serializable(package="faces")
class Cosine(StepSchedule):
    """Per step t, with W = warmup_epochs · steps_per_epoch and T the total steps:
    t < W: base · t / W; then min_lr + ½ (base − min_lr)(1 + cos(π · (t − W) / (T − W)))."""

    def __init__(self, base_lr, epochs, steps_per_epoch, warmup_epochs=0.0, min_lr=0.0):
        super().__init__(base_lr, epochs, steps_per_epoch)
        self.validate_options(base_lr=base_lr, epochs=epochs, warmup_epochs=warmup_epochs, min_lr=min_lr)
        self.warmup_epochs = float(warmup_epochs)
        self.min_lr = float(min_lr)

    validate_options = staticmethod(validate_cosine_options)

    def rate(self, step):
        warmup = self.warmup_epochs * self.steps_per_epoch
        progress = tf.minimum(1.0, (step - warmup) / max(1.0, self.total_steps - warmup))
        decayed = self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < warmup, self.base_lr * step / max(warmup, 1.0), decayed)

    def get_config(self):
        return {**super().get_config(), "warmup_epochs": self.warmup_epochs, "min_lr": self.min_lr}


@SCHEDULES.register("polynomial")
@keras.saving.register_keras_serializable(package="faces")
class Polynomial(StepSchedule):
    """arcface_torch's `PolynomialLRWarmup` closed form (`recognition/arcface_torch/lr_scheduler.py`), per step t:
    t ≤ W: base · t / W; else base · (1 − (min(T, t) − W) / (T − W))^power, with W = warmup_epochs ·
    steps_per_epoch, T the total steps. power 1 (the default) decays linearly to 0 at the last step. With power 2
    it is, at every update, arcface_torch's earlier `PolyScheduler` (`lr_scheduler.py` at d9cb10e: `self.power = 2`,
    warm-up base · t / W), which the field recipes' commits train with."""

    def __init__(self, base_lr, epochs, steps_per_epoch, warmup_epochs=0.0, power=1.0):
        super().__init__(base_lr, epochs, steps_per_epoch)
        self.validate_options(epochs=epochs, warmup_epochs=warmup_epochs, power=power)
        self.warmup_epochs = float(warmup_epochs)
        self.power = float(power)

    validate_options = staticmethod(validate_polynomial_options)

    def rate(self, step):
        warmup = self.warmup_epochs * self.steps_per_epoch
        remaining = 1.0 - (tf.minimum(float(self.total_steps), step) - warmup) / max(1.0, self.total_steps - warmup)
        decayed = self.base_lr * tf.pow(tf.maximum(remaining, 0.0), self.power)
        return tf.where(step <= warmup, self.base_lr * step / max(warmup, 1.0), decayed) if warmup > 0 else decayed

    def get_config(self):
        return {**super().get_config(), "warmup_epochs": self.warmup_epochs, "power": self.power}


@SCHEDULES.register("reduce_on_plateau")
def reduce_on_plateau(base_lr, epochs, steps_per_epoch, monitor="loss", factor=0.1, patience=5, min_lr=0.0):
    """lr × factor when `monitor` has not improved for `patience` epochs (a Keras ReduceLROnPlateau callback)."""
    mode = "min" if monitor.endswith("loss") else "max"
    return keras.callbacks.ReduceLROnPlateau(monitor, factor=factor, patience=patience, min_lr=min_lr, mode=mode)


reduce_on_plateau.validate_options = validate_plateau_options


SCHEDULE_FIXED_ARGUMENTS = ("base_lr", "epochs", "steps_per_epoch")


def build_schedule(name, base_lr, epochs, steps_per_epoch, **options):
    """(learning rate for the optimizer, callback or None) of the schedule registered as `name`."""
    schedule = SCHEDULES.build(name, base_lr=base_lr, epochs=epochs, steps_per_epoch=steps_per_epoch, **options)
    if isinstance(schedule, keras.callbacks.Callback):
        return float(base_lr), schedule
    return schedule, None
