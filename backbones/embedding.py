"""The embedding model: uint8-range image → normalised input → backbone → embedding neck."""
import keras
from keras import layers

from backbones.applications import require_local_weights
from registry import BACKBONES

PIXEL_MEAN = 127.5
PIXEL_SCALE = 128.0


def with_synchronized_batchnorm(model):
    """A copy of `model` (same weights) whose BatchNormalization layers average their batch
    statistics over all replicas of a `tf.distribute` strategy (identical to plain BN on one)."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, layers.BatchNormalization):
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def build_embedding_model(backbone="tiny", embedding_size=512, dropout=0.1, image_size=112, backbone_weights=None,
                          sync_batchnorm=False, backbone_args=None):
    """Image (B, image_size, image_size, 3) in 0..255 → embedding (B, embedding_size), float32.

    Inside: `(x - 127.5) / 128` → backbone feature map → GlobalAveragePooling → Dropout
    → Dense(embedding_size) → BatchNormalization. Only built-in Keras layers, so the saved
    model loads anywhere with no custom objects. `sync_batchnorm` makes every BatchNorm use
    global-batch statistics under a multi-replica strategy. `backbone_args` are the backbone's own options.
    """
    require_local_weights(backbone_weights)
    shape = (image_size, image_size, 3)
    features = BACKBONES.build(backbone, input_shape=shape, weights=backbone_weights, **(backbone_args or {}))
    if sync_batchnorm:
        features = with_synchronized_batchnorm(features)
    images = keras.Input(shape, name="image")
    normalised = layers.Rescaling(1.0 / PIXEL_SCALE, offset=-PIXEL_MEAN / PIXEL_SCALE, name="normalise")(images)
    pooled = layers.GlobalAveragePooling2D(name="pool")(features(normalised))
    dropped = layers.Dropout(dropout, name="dropout")(pooled)
    embedding = layers.Dense(embedding_size, name="embedding")(dropped)
    embedding = layers.BatchNormalization(name="embedding_bn", dtype="float32", synchronized=sync_batchnorm)(embedding)
    return keras.Model(images, embedding, name=f"{backbone}_embedding")
