"""A tiny 4-layer CNN: for tests and quick demos on a CPU."""
import keras
from keras import layers

from registry import BACKBONES


@BACKBONES.register("tiny")
def tiny(input_shape=(112, 112, 3), weights=None, widths=(16, 32, 64, 128)):
    """Tiny CNN: 4 × (3x3 conv stride 2, BatchNorm, ReLU); (H, W, 3) → (H/16, W/16, widths[-1]); embedding block: pool → dropout → dense → BN."""
    inputs = keras.Input(input_shape)
    features = inputs
    for index, width in enumerate(widths):
        features = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name=f"tiny_conv{index}")(features)
        features = layers.BatchNormalization(name=f"tiny_bn{index}")(features)
        features = layers.ReLU(name=f"tiny_relu{index}")(features)
    model = keras.Model(inputs, features, name="tiny")
    if weights:
        model.load_weights(weights)
    return model
