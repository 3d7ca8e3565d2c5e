"""MobileFaceNet: arcface_torch's `get_mbf` (blocks (1, 4, 6, 2), scale 2) with its GDC embedding block.

Exact port of deepinsight/insightface `recognition/arcface_torch/backbones/mobilefacenet.py`
(adapted there from cavaface) to channels-last built-in Keras layers (`backbones.torch_like`):

- `ConvBlock` = conv (no bias) → BN → PReLU; `LinearBlock` = conv (no bias) → BN;
- `DepthWise(in, out, groups=g)` = ConvBlock 1×1 in→g → depthwise 3×3 ConvBlock (stride) →
  LinearBlock 1×1 g→out, plus the input when residual;
- stem: ConvBlock 3×3 stride 2 → 128, then ConvBlock 3×3 128→128 with groups=64 (grouped, not
  depthwise: 2 channels per group; held as `torch_like.grouped_conv2d`, fast on CPUs too); then DepthWise 128→128 (g 128, stride 2), 4 residual
  (g 128), DepthWise 128→256 (g 256, stride 2), 6 residual (g 256), DepthWise 256→256 (g 512,
  stride 2), 2 residual (g 256); `conv_sep` ConvBlock 1×1 → 512: (112, 112, 3) → (7, 7, 512);
- embedding block `gdc_embedding_block` (GDC): 7×7 depthwise LinearBlock (valid) → flatten →
  dense without bias → BN.

Initialisation as arcface_torch: kaiming-normal (fan_out, ReLU gain) for convolutions and the
dense layer, BN γ = 1, β = 0.
"""
import math

import keras
from keras import initializers, layers

from backbones.torch_like import batchnorm, conv2d, depthwise_conv2d, grouped_conv2d, prelu
from registry import BACKBONES

KAIMING_FAN_OUT = initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


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
        out = conv2d(inputs, filters, kernel_size, f"{name}_conv", strides, padding, groups, KAIMING_FAN_OUT)
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


def mobilefacenet_features(input_shape=(112, 112, 3), weights=None, blocks=(1, 4, 6, 2), scale=2):
    """MobileFaceNet up to `conv_sep`: normalised image (H, W, 3) → (H/16, W/16, 512)."""
    width = 64 * scale
    images = keras.Input(input_shape)
    out = conv_block(images, width, 3, "layers0", strides=2, padding=1)
    if blocks[0] != 1:
        raise ValueError(f"blocks[0]={blocks[0]}: only get_mbf's blocks[0] == 1 (a grouped ConvBlock) is ported.")
    out = conv_block(out, width, 3, "layers1", padding=1, groups=64)
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
    out = layers.Dense(embedding_size, use_bias=False, kernel_initializer=KAIMING_FAN_OUT, name="gdc_fc",
                       dtype="float32")(out)
    return batchnorm("features", synchronized=synchronized, dtype="float32")(out)


@BACKBONES.register("mobilefacenet")
def mobilefacenet(input_shape=(112, 112, 3), weights=None):
    """MobileFaceNet (arcface_torch get_mbf), (112, 112, 3) → (7, 7, 512); embedding block: GDC (7×7 depthwise → dense → BN)."""
    return mobilefacenet_features(input_shape, weights)


mobilefacenet.embedding_block = gdc_embedding_block
