"""The embedding model: uint8-range image → normalised input → backbone → embedding neck."""
import keras
from keras import layers

from backbones.applications import require_local_weights
from registry import BACKBONES

PIXEL_MEAN = 127.5
PIXEL_SCALE = 128.0


def build_embedding_model(backbone="tiny", embedding_size=512, dropout=0.1, image_size=112, backbone_weights=None):
    """Image (B, image_size, image_size, 3) in 0..255 → embedding (B, embedding_size), float32.

    Inside: `(x - 127.5) / 128` → backbone feature map → GlobalAveragePooling → Dropout
    → Dense(embedding_size) → BatchNormalization. Only built-in Keras layers, so the saved
    model loads anywhere with no custom objects.
    """
    require_local_weights(backbone_weights)
    shape = (image_size, image_size, 3)
    features = BACKBONES.build(backbone, input_shape=shape, weights=backbone_weights)
    images = keras.Input(shape, name="image")
    normalised = layers.Rescaling(1.0 / PIXEL_SCALE, offset=-PIXEL_MEAN / PIXEL_SCALE, name="normalise")(images)
    pooled = layers.GlobalAveragePooling2D(name="pool")(features(normalised))
    dropped = layers.Dropout(dropout, name="dropout")(pooled)
    embedding = layers.Dense(embedding_size, name="embedding")(dropped)
    embedding = layers.BatchNormalization(name="embedding_bn", dtype="float32")(embedding)
    return keras.Model(images, embedding, name=f"{backbone}_embedding")
