"""The embedding model: uint8-range image → normalised input → backbone → embedding neck."""
import keras
from keras import layers

from backbones.applications import require_local_weights
from backbones.onnx_graph import is_onnx_file, parse_onnx
from backbones.onnx_import import load_onnx_weights
from backbones.onnx_variants import onnx_backbone_args
from backbones.keras_weights import is_saved_embedding_model, load_embedding_weights
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


def pooled_embedding_block(features, embedding_size, dropout, synchronized=False):
    """The default embedding block: (B, h, w, c) → GlobalAveragePooling → Dropout → Dense → BN (float32) → (B, d)."""
    pooled = layers.GlobalAveragePooling2D(name="pool")(features)
    dropped = layers.Dropout(dropout, name="dropout")(pooled)
    embedding = layers.Dense(embedding_size, name="embedding")(dropped)
    return layers.BatchNormalization(name="embedding_bn", dtype="float32", synchronized=synchronized)(embedding)


def embedding_block_of(backbone, backbone_args=None):
    """The embedding block backbone `backbone` declares (its builder's `embedding_block`), else the pooled one.

    A builder offering several blocks declares {name: block} (the first is the default), chosen
    by its option `embedding_block` in `backbone_args`.
    """
    declared = getattr(BACKBONES.get(backbone), "embedding_block", pooled_embedding_block)
    if isinstance(declared, dict):
        return declared[(backbone_args or {}).get("embedding_block", next(iter(declared)))]
    return declared


def build_embedding_model(backbone="tiny", embedding_size=512, dropout=0.1, image_size=112, backbone_weights=None,
                          sync_batchnorm=False, backbone_args=None, onnx_graph=None):
    """Image (B, image_size, image_size, 3) in 0..255 → embedding (B, embedding_size), float32.

    Inside: `(x - 127.5) / 128` → backbone feature map → the backbone's embedding block
    (`embedding_block_of`; `pooled_embedding_block` unless the backbone brings its own, as
    the IResNets and MobileFaceNet do). Only built-in Keras layers, so the saved model loads
    anywhere with no custom objects. `sync_batchnorm` makes every BatchNorm use global-batch
    statistics under a multi-replica strategy. `backbone_weights`: a local Keras weights file
    of the backbone, or an `.onnx` face model whose weights go into the whole embedding model,
    embedding block included (`backbones.onnx_import`; the options of the variant the file is,
    `backbones.onnx_variants`, complete `backbone_args`; `onnx_graph`: the file's `OnnxGraph`,
    when the caller has parsed it), or one of our embedding models saved as `.keras` (a run's
    `embedding.keras`, `backbones.keras_weights`). `backbone_args` are the backbone's own options.
    """
    require_local_weights(backbone_weights)
    onnx_weights = is_onnx_file(backbone_weights)
    if onnx_weights:
        onnx_graph = onnx_graph or parse_onnx(backbone_weights)
        backbone_args = onnx_backbone_args(onnx_graph, backbone, backbone_args)
    keras_model_weights = bool(backbone_weights) and is_saved_embedding_model(backbone_weights)
    shape = (image_size, image_size, 3)
    features = BACKBONES.build(backbone, input_shape=shape,
                               weights=None if onnx_weights or keras_model_weights else backbone_weights,
                               **(backbone_args or {}))
    if sync_batchnorm:
        features = with_synchronized_batchnorm(features)
    images = keras.Input(shape, name="image")
    normalised = layers.Rescaling(1.0 / PIXEL_SCALE, offset=-PIXEL_MEAN / PIXEL_SCALE, name="normalise")(images)
    block = embedding_block_of(backbone, backbone_args)
    embedding = block(features(normalised), embedding_size, dropout, sync_batchnorm)
    model = keras.Model(images, embedding, name=f"{backbone}_embedding")
    if onnx_weights:
        load_onnx_weights(model, onnx_graph, backbone)
    if keras_model_weights:
        load_embedding_weights(model, str(backbone_weights))
    return model
