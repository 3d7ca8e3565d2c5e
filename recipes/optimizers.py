"""Keras optimizers by name, with decoupled weight decay that spares normalisation, PReLU and bias parameters."""
import inspect

import keras

from registry import keyword_options

# Substrings of variable names that weight decay leaves alone: BatchNorm γ/β (decaying them only
# rescales what the next layer undoes, and fights the normalisation), PReLU slopes (decay pulls
# them towards ReLU) and biases; as arcface_torch's users and timm exclude them (1-d parameters).
NO_DECAY_NAMES = ("gamma", "beta", "bias", "alpha")


def optimizer_classes():
    """{lower-case name: class} of every optimizer in `keras.optimizers` ('sgd', 'adamw', 'adamax', ...)."""
    return {
        name.lower(): cls for name, cls in vars(keras.optimizers).items()
        if inspect.isclass(cls) and issubclass(cls, keras.optimizers.Optimizer) and cls is not keras.optimizers.Optimizer
        and name != "LossScaleOptimizer"
    }


def optimizer_options(name):
    """{option: default} of optimizer `name` besides the learning rate (e.g. momentum, weight_decay)."""
    return keyword_options(optimizer_classes()[name], skip=("learning_rate", "name"))


def build_optimizer(name, learning_rate, **options):
    """Optimizer `name` at `learning_rate` (a float or a schedule) with `options`.

    `weight_decay` is Keras' decoupled decay (each step w ← w − lr · wd · w, as AdamW; for SGD
    this differs from PyTorch's L2-in-gradient `weight_decay` by the momentum's 1/(1−μ) scaling),
    applied to kernels and class centres but not to variables named in `NO_DECAY_NAMES`.
    """
    optimizer = optimizer_classes()[name](learning_rate=learning_rate, **options)
    if optimizer.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return optimizer
