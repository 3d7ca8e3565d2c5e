"""MobileFaceNet: arcface_torch's `MobileFaceNet` (`get_mbf`: blocks (1, 4, 6, 2), scale 2) and its released variants.

Exact port of deepinsight/insightface `recognition/arcface_torch/backbones/mobilefacenet.py`
(adapted there from cavaface) to channels-last built-in Keras layers (`backbones.torch_like`):

- `ConvBlock` = conv (no bias) → BN → PReLU; `LinearBlock` = conv (no bias) → BN;
- `DepthWise(in, out, groups=g)` = ConvBlock 1×1 in→g → depthwise 3×3 ConvBlock (stride) →
  LinearBlock 1×1 g→out, plus the input when residual;
- with width w = 64·scale: stem ConvBlock 3×3 stride 2 → w, then (blocks[0] == 1) ConvBlock 3×3
  w→w with groups=64 (depthwise at scale 1; grouped at scale > 1, held as
  `torch_like.grouped_conv2d`, fast on CPUs too) or (blocks[0] > 1) blocks[0] residual DepthWise
  (g 128); DepthWise w→w (g 128, stride 2), blocks[1] residual (g 128), DepthWise w→2w (g 256,
  stride 2), blocks[2] residual (g 256), DepthWise 2w→2w (g 512, stride 2), blocks[3] residual
  (g 256); `conv_sep` ConvBlock 1×1 → 512: (112, 112, 3) → (7, 7, 512).

The options follow the file's history (`git log recognition/arcface_torch/backbones/mobilefacenet.py`):
width 64 (scale 1) from May to July 2021 (commits bb611ed6, f089b660), 128 (scale 2) hard-coded from
c0b95cc6 (July 2021), `blocks` and `scale` arguments from 5ef98047 (March 2022: `get_mbf` (1, 4, 6, 2)
scale 2, `get_mbf_large` (2, 8, 12, 4) scale 4). Embedding blocks (`embedding_block`):

- "gdc" (`gdc_embedding_block`, arcface_torch's GDC, every commit): 7×7 depthwise LinearBlock
  (valid) → flatten → dense without bias → BN;
- "pointwise_fc" (`pointwise_fc_embedding_block`): the block of insightface's released
  `w600k_mbf.onnx` (buffalo_s / buffalo_sc packs), which is in no published training code:
  1×1 conv 512→64 → PReLU → flatten (64·7·7 = 3,136) → dense with bias → BN. The released file
  has every BN after a convolution folded in; we keep conv → BN → PReLU like every other ConvBlock.

Initialisation as arcface_torch: kaiming-normal (fan_out, ReLU gain) for convolutions and the
dense layer, BN γ = 1, β = 0.
"""
import math

import keras
from keras import initializers, layers

from backbones.torch_like import batchnorm, conv2d, depthwise_conv2d, grouped_conv2d, prelu
from registry import BACKBONES, UserError

def kaiming_fan_out():
    """A new kaiming-normal (fan_out, ReLU gain) initializer for one layer: Keras draws an unseeded initializer's
    seed once, when it is made, so one shared instance would give every kernel of a shape the same values."""
    return initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def depthwise_kaiming_fan_out(channels, kernel_size):
    """PyTorch's kaiming-normal fan_out for a depthwise (C, 1, k, k) weight: fan_out = C·k·k (Keras counts k·k)."""
    return initializers.RandomNormal(stddev=math.sqrt(2.0 / (channels * kernel_size * kernel_size)))


def conv_block(inputs, filters, kernel_size, name, strides=1, padding=0, groups=1, activation=True):
    """ConvBlock (conv → BN → PReLU), or LinearBlock when `activation` is False; groups == channels is depthwise."""
    channels = inputs.shape[-1]
    if groups > 1 and groups == channels == filters:
        out = depthwise_conv2d(inputs, kernel_size, f"{name}_conv", strides, padding,
                               depthwise_kaiming_fan_out(channels, kernel_size))
    elif groups > 1:
        out = grouped_conv2d(inputs, filters, kernel_size, f"{name}_conv", strides, padding, groups)
    else:
        out = conv2d(inputs, filters, kernel_size, f"{name}_conv", strides, padding, groups, kaiming_fan_out())
    out = batchnorm(f"{name}_bn")(out)
    return prelu(f"{name}_prelu")(out) if activation else out


def depthwise_block(inputs, filters, groups, name, strides=1, residual=False):
    """`DepthWise`: 1×1 ConvBlock → `groups` channels, 3×3 depthwise ConvBlock, 1×1 LinearBlock → `filters`."""
    out = conv_block(inputs, groups, 1, f"{name}_expand")
    out = conv_block(out, groups, 3, f"{name}_dw", strides=strides, padding=1, groups=groups)
    out = conv_block(out, filters, 1, f"{name}_project", activation=False)
    return layers.Add(name=f"{name}_add")([inputs, out]) if residual else out


def residual_stage(inputs, blocks, groups, name):
    """`Residual`: `blocks` residual DepthWise blocks keeping the width."""
    for index in range(blocks):
        inputs = depthwise_block(inputs, inputs.shape[-1], groups, f"{name}_{index}", residual=True)
    return inputs


DEFAULT_BLOCKS = (1, 4, 6, 2)
DEFAULT_SCALE = 2


def mobilefacenet_features(input_shape=(112, 112, 3), weights=None, blocks=DEFAULT_BLOCKS, scale=DEFAULT_SCALE):
    """MobileFaceNet up to `conv_sep`: normalised image (H, W, 3) → (H/16, W/16, 512)."""
    try:
        counts, whole_scale = tuple(int(count) for count in blocks), int(scale) if float(scale).is_integer() else 0
    except (TypeError, ValueError):
        counts, whole_scale = (), 0
    if len(counts) != 4 or min(counts) < 1 or whole_scale < 1:
        raise UserError(f"mobilefacenet: blocks={blocks!r} and scale={scale!r}; need four block counts >= 1 and a "
                        "whole scale >= 1 (arcface_torch: (1, 4, 6, 2) at scale 2; large: (2, 8, 12, 4), 4).")
    blocks, width = counts, 64 * whole_scale
    images = keras.Input(input_shape)
    out = conv_block(images, width, 3, "layers0", strides=2, padding=1)
    if blocks[0] == 1:
        out = conv_block(out, width, 3, "layers1", padding=1, groups=64)
    else:
        out = residual_stage(out, blocks[0], 128, "layers1")
    out = depthwise_block(out, width, 128, "layers2", strides=2)
    out = residual_stage(out, blocks[1], 128, "layers3")
    out = depthwise_block(out, 2 * width, 256, "layers4", strides=2)
    out = residual_stage(out, blocks[2], 256, "layers5")
    out = depthwise_block(out, 2 * width, 512, "layers6", strides=2)
    out = residual_stage(out, blocks[3], 256, "layers7")
    out = conv_block(out, 512, 1, "conv_sep")
    model = keras.Model(images, out, name="mobilefacenet")
    if weights:
        model.load_weights(weights)
    return model


def gdc_embedding_block(features, embedding_size, dropout, synchronized=False):
    """GDC: (B, h, w, 512) → h×w depthwise conv (valid) → BN → flatten → dense (no bias) → BN → (B, embedding_size).

    The depthwise kernel covers the whole feature map (7×7 at 112×112, as arcface_torch's).
    arcface_torch's GDC has no dropout, so `dropout` is unused. Computes in float32, as
    arcface_torch runs `conv_sep` and `features` in float32 under fp16.
    """
    del dropout
    height, width, channels = features.shape[1:]
    out = layers.DepthwiseConv2D((height, width), use_bias=False, name="gdc_conv", dtype="float32",
                                 depthwise_initializer=depthwise_kaiming_fan_out(channels, height))(features)
    out = batchnorm("gdc_bn", synchronized=synchronized, dtype="float32")(out)
    out = layers.Flatten(name="gdc_flatten")(out)
    out = layers.Dense(embedding_size, use_bias=False, kernel_initializer=kaiming_fan_out(), name="gdc_fc",
                       dtype="float32")(out)
    return batchnorm("features", synchronized=synchronized, dtype="float32")(out)


POINTWISE_CHANNELS = 64


def pointwise_fc_embedding_block(features, embedding_size, dropout, synchronized=False):
    """w600k_mbf's block: (B, h, w, 512) → 1×1 conv → 64 → BN → PReLU → flatten → dense (bias) → BN → (B, d).

    The flatten is channels-last (PyTorch's is c, h, w: `backbones.onnx_import` permutes the dense
    rows). No dropout in the released model, so `dropout` is unused; float32 like the GDC block.
    """
    del dropout
    out = layers.Conv2D(POINTWISE_CHANNELS, 1, use_bias=False, kernel_initializer=kaiming_fan_out(),
                        name="pointwise_conv", dtype="float32")(features)
    out = batchnorm("pointwise_bn", synchronized=synchronized, dtype="float32")(out)
    out = prelu("pointwise_prelu", dtype="float32")(out)
    out = layers.Flatten(name="pointwise_flatten")(out)
    out = layers.Dense(embedding_size, kernel_initializer=kaiming_fan_out(), name="pointwise_fc", dtype="float32")(out)
    return batchnorm("features", synchronized=synchronized, dtype="float32")(out)


EMBEDDING_BLOCKS = {"gdc": gdc_embedding_block, "pointwise_fc": pointwise_fc_embedding_block}


@BACKBONES.register("mobilefacenet")
def mobilefacenet(input_shape=(112, 112, 3), weights=None, scale=DEFAULT_SCALE, blocks=DEFAULT_BLOCKS,
                  embedding_block="gdc"):
    """MobileFaceNet (arcface_torch get_mbf), (112, 112, 3) → (7, 7, 512); embedding block gdc or pointwise_fc.

    `scale`: width 64·scale; `blocks`: residual blocks per stage; `embedding_block`: "gdc"
    (arcface_torch) or "pointwise_fc" (insightface's released w600k_mbf), see the module docstring.
    """
    if embedding_block not in EMBEDDING_BLOCKS:
        raise UserError(f"mobilefacenet: embedding_block={embedding_block!r} is not one of "
                         f"{', '.join(EMBEDDING_BLOCKS)}.")
    return mobilefacenet_features(input_shape, weights, blocks, scale)


mobilefacenet.embedding_block = EMBEDDING_BLOCKS
