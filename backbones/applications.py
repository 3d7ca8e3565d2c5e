"""`keras.applications` backbones at face resolution, built without downloading anything."""
import os

import keras

from registry import BACKBONES, MissingFileError


def require_local_weights(weights):
    """Raise MissingFileError unless `weights` is None or an existing local file."""
    if weights is not None and not os.path.isfile(str(weights)):
        raise MissingFileError(
            f"backbone weights file {weights!r} does not exist. Nothing is downloaded: "
            "pass the path of a local weights file (e.g. a '.weights.h5' or Keras '.h5' "
            "no-top file), or leave --backbone_weights unset for random initialisation."
        )


def _application(constructor, input_shape, weights):
    """`constructor(include_top=False)` with random init, or weights from a local file."""
    require_local_weights(weights)
    return constructor(include_top=False, weights=weights, input_shape=tuple(input_shape))


@BACKBONES.register("resnet50v2")
def resnet50v2(input_shape=(112, 112, 3), weights=None):
    """ResNet50V2 (keras.applications), (112, 112, 3) → (4, 4, 2048); embedding block: pool → dropout → dense → BN."""
    return _application(keras.applications.ResNet50V2, input_shape, weights)


@BACKBONES.register("resnet101v2")
def resnet101v2(input_shape=(112, 112, 3), weights=None):
    """ResNet101V2 (keras.applications), (112, 112, 3) → (4, 4, 2048); embedding block: pool → dropout → dense → BN."""
    return _application(keras.applications.ResNet101V2, input_shape, weights)


@BACKBONES.register("mobilenetv2")
def mobilenetv2(input_shape=(112, 112, 3), weights=None):
    """MobileNetV2 (keras.applications, alpha 1.0), (112, 112, 3) → (4, 4, 1280); embedding block: pool → dropout → dense → BN."""
    return _application(keras.applications.MobileNetV2, input_shape, weights)
