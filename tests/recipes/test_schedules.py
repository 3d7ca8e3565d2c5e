"""Learning-rate schedules per step against NumPy re-computations, exact across a resume; weight decay."""
import glob
import math
import os

import keras
import numpy as np
import pytest

import recipes  # noqa: F401
from recipes.resolve import resolve_recipe
from recipes.optimizers import build_optimizer
from recipes.train import TrainingStopped, train
from registry import CALLBACKS, SCHEDULES


def polynomial_closed_form(base, warmup, total, power, step):
    """arcface_torch `PolynomialLRWarmup._get_closed_form_lr`, with last_epoch = step (updates done)."""
    if step <= warmup and warmup > 0:
        return base * step / warmup
    return base * (1.0 - (min(total, step) - warmup) / (total - warmup)) ** power


def numpy_rate(name, base, epochs, steps_per_epoch, step, **options):
    epoch = step // steps_per_epoch
    total = epochs * steps_per_epoch
    if name == "constant_then_exponential":
        return base if epoch < 10 else base * math.exp(0.2 * (10 - epoch))
    if name == "step":
        return base * options["factor"] ** (epoch // options["step_epochs"])
    if name == "cosine":
        warmup = options["warmup_epochs"] * steps_per_epoch
        if step < warmup:
            return base * step / warmup
        return 0.5 * base * (1 + math.cos(math.pi * min(1.0, (step - warmup) / (total - warmup))))
    return polynomial_closed_form(base, options["warmup_epochs"] * steps_per_epoch, total, options["power"], step)


@pytest.mark.parametrize("name, options", [
    ("constant_then_exponential", {}), ("step", {"step_epochs": 3, "factor": 0.5}),
    ("cosine", {"warmup_epochs": 2}), ("polynomial", {"warmup_epochs": 0, "power": 1.0}),
    ("polynomial", {"warmup_epochs": 2, "power": 2.0}),
])
def test_every_step_follows_the_closed_form(name, options):
    base, epochs, steps = 0.1, 14, 7
    schedule = SCHEDULES.build(name, base_lr=base, epochs=epochs, steps_per_epoch=steps, **options)
    got = [float(schedule(step)) for step in range(epochs * steps + 3)]
    want = [numpy_rate(name, base, epochs, steps, step, **options) for step in range(epochs * steps + 3)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule)).get_config() == \
        schedule.get_config()


class LearningRateProbe(keras.callbacks.Callback):
    """Records (optimizer step, lr) before every training step, counts epoch ends, and interrupts the
    run (as Ctrl-C would) at the end of epoch `interrupt_after`."""

    seen = []
    epoch_ends = []
    interrupt_after = None

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.seen.append((step, float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))))

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends.append(epoch + 1)
        if epoch + 1 == self.interrupt_after:
            raise KeyboardInterrupt


CALLBACKS.register("lr_probe", lambda context: LearningRateProbe())


@pytest.mark.slow
def test_polynomial_lr_per_step_is_exact_across_a_resume_and_a_plugin_callback_runs_once_per_epoch(tiny_overrides):
    overrides = {**tiny_overrides, "epochs": 4, "steps_per_epoch": 3, "lr": 0.1, "optimizer": "sgd",
                 "lr_schedule": "polynomial", "schedule_args.warmup_epochs": 1, "callbacks": "+lr_probe",
                 "eval_bins": [], "dataset": "folder"}
    LearningRateProbe.seen.clear()
    LearningRateProbe.epoch_ends.clear()
    LearningRateProbe.interrupt_after = 2
    with pytest.raises(TrainingStopped, match="interrupted") as stopped:
        train(resolve_recipe("softmax", overrides))
    assert stopped.value.exit_code == 130
    LearningRateProbe.interrupt_after = None
    (run_dir,) = glob.glob(os.path.join(tiny_overrides["runs_dir"], "*"))
    train(resolve_recipe("softmax", overrides), resume_dir=run_dir)
    steps = [step for step, _ in LearningRateProbe.seen]
    assert steps == list(range(12))
    want = [polynomial_closed_form(0.1, 3, 12, 1.0, step) for step in steps]
    np.testing.assert_allclose([lr for _, lr in LearningRateProbe.seen], want, rtol=1e-5, atol=1e-9)
    assert LearningRateProbe.epoch_ends == [1, 2, 3, 4]


def poly_scheduler(base, warmup, total, step):
    """arcface_torch `PolyScheduler.get_lr` (lr_scheduler.py at d9cb10e), last_epoch = step (updates done):
    step < warmup: base · step / warmup; else base · (1 − (step − warmup) / (total − warmup))^2."""
    if step < warmup:
        return base * step / warmup
    return base * (1.0 - (step - warmup) / (total - warmup)) ** 2


@pytest.mark.parametrize("warmup_epochs", [0, 2])
def test_polynomial_of_power_2_is_arcface_torchs_poly_scheduler(warmup_epochs):
    schedule = SCHEDULES.build("polynomial", base_lr=0.1, epochs=6, steps_per_epoch=5, warmup_epochs=warmup_epochs,
                               power=2.0)
    want = [poly_scheduler(0.1, warmup_epochs * 5, 30, step) for step in range(30)]
    np.testing.assert_allclose([float(schedule(step)) for step in range(30)], want, rtol=1e-6, atol=1e-9)


def test_decoupled_weight_decay_shrinks_kernels_but_not_batchnorm_or_prelu():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(),
                              keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25))])
    optimizer = build_optimizer("sgd", 0.1, weight_decay=0.01)
    optimizer.build(model.trainable_variables)
    before = {variable.path: variable.numpy().copy() for variable in model.trainable_variables}
    zero = [keras.ops.zeros_like(variable) for variable in model.trainable_variables]
    for _ in range(3):
        optimizer.apply_gradients(zip(zero, model.trainable_variables))
    for variable in model.trainable_variables:
        if variable.name == "kernel":
            np.testing.assert_allclose(variable.numpy(), before[variable.path] * (1 - 0.1 * 0.01) ** 3, rtol=1e-6)
        else:
            np.testing.assert_array_equal(variable.numpy(), before[variable.path])
