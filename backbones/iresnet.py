"""IResNet-18/34/50/100/200: insightface's face ResNets, with their own embedding block.

Exact port of deepinsight/insightface `recognition/arcface_torch/backbones/iresnet.py` to
channels-last built-in Keras layers (see `backbones.torch_like` for padding, BatchNorm and PReLU):

- stem: 3×3 conv 64 (stride 1, no bias) → BN → PReLU;
- four stages of `IBasicBlock`s, widths 64, 128, 256, 512, the first block of each with stride 2
  and a 1×1 conv (stride 2) + BN shortcut; a block is
  BN → 3×3 conv → BN → PReLU → 3×3 conv (stride) → BN, plus the shortcut;
- embedding block (`iresnet_embedding_block`): BN → dropout → flatten → dense(embedding_size)
  → BN with γ frozen at 1 (arcface_torch's `features`, whose weight is frozen at 1: a
  non-trainable variable here too, so the weight count is arcface_torch's).

At 112×112 the feature map is (7, 7, 512). Initialisation as arcface_torch: convolutions
normal(0, 0.1), BN γ = 1, β = 0, the dense layer PyTorch's `nn.Linear` default
(uniform ±1/√fan_in for kernel and bias).
"""
import math

import keras
from keras import initializers, layers

from backbones.torch_like import batchnorm, conv2d, fixed_scale_batchnorm, prelu
from registry import BACKBONES

STAGE_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = {
    "iresnet18": (2, 2, 2, 2),
    "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
    "iresnet200": (6, 26, 60, 6),
}


def conv_init():
    """A new normal(0, 0.1) initializer for one convolution: Keras draws an unseeded initializer's seed once,
    when it is made, so one shared instance would give every kernel of a shape the same values."""
    return initializers.RandomNormal(mean=0.0, stddev=0.1)


def basic_block(inputs, planes, stride, name):
    """`IBasicBlock`: (B, H, W, C) → (B, H/stride, W/stride, planes); layer names follow PyTorch's (`layer1_0_bn1`)."""
    out = batchnorm(f"{name}_bn1")(inputs)
    out = conv2d(out, planes, 3, f"{name}_conv1", padding=1, initializer=conv_init())
    out = batchnorm(f"{name}_bn2")(out)
    out = prelu(f"{name}_prelu")(out)
    out = conv2d(out, planes, 3, f"{name}_conv2", strides=stride, padding=1, initializer=conv_init())
    out = batchnorm(f"{name}_bn3")(out)
    identity = inputs
    if stride != 1 or inputs.shape[-1] != planes:
        identity = conv2d(inputs, planes, 1, f"{name}_downsample_0", strides=stride, initializer=conv_init())
        identity = batchnorm(f"{name}_downsample_1")(identity)
    return layers.Add(name=f"{name}_add")([out, identity])


def iresnet(blocks_per_stage, input_shape=(112, 112, 3), weights=None, name="iresnet"):
    """IResNet feature extractor: normalised image (H, W, 3) → (H/16, W/16, 512), before the output BN."""
    images = keras.Input(input_shape)
    features = conv2d(images, 64, 3, "conv1", padding=1, initializer=conv_init())
    features = batchnorm("bn1")(features)
    features = prelu("prelu")(features)
    for stage, (planes, blocks) in enumerate(zip(STAGE_WIDTHS, blocks_per_stage), start=1):
        for index in range(blocks):
            features = basic_block(features, planes, 2 if index == 0 else 1, f"layer{stage}_{index}")
    model = keras.Model(images, features, name=name)
    if weights:
        model.load_weights(weights)
    return model


def iresnet_embedding_block(features, embedding_size, dropout, synchronized=False):
    """arcface_torch's IResNet output: (B, h, w, 512) → BN → dropout → flatten → dense → BN(γ ≡ 1) → (B, embedding_size).

    The flatten is channels-last (h, w, c order); PyTorch's is (c, h, w): the same network up to a
    permutation of the dense layer's rows (`backbones.onnx_import` permutes them). Dense and final
    BN compute in float32, as arcface_torch runs its `fc` and `features` in float32 under fp16.
    """
    fan_in = math.prod(features.shape[1:])
    bound = 1.0 / math.sqrt(fan_in)
    out = batchnorm("bn2", synchronized=synchronized)(features)
    out = layers.Dropout(dropout, name="dropout")(out)
    out = layers.Flatten(name="flatten")(out)
    out = layers.Dense(embedding_size, kernel_initializer=initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
                       bias_initializer=initializers.RandomUniform(-bound, bound), name="fc", dtype="float32")(out)
    return fixed_scale_batchnorm(out, "features", synchronized=synchronized, dtype="float32")


def _register(name, blocks_per_stage):
    def build(input_shape=(112, 112, 3), weights=None):
        return iresnet(blocks_per_stage, input_shape, weights, name=name)

    depth = name.removeprefix("iresnet")
    build.__name__ = name
    build.__doc__ = (f"IResNet-{depth} (arcface_torch), stages {list(blocks_per_stage)}, (112, 112, 3) → (7, 7, 512); "
                     f"embedding block: BN → dropout → flatten → dense → BN(γ ≡ 1).")
    build.embedding_block = iresnet_embedding_block
    BACKBONES.register(name, build)
    return build


iresnet18, iresnet34, iresnet50, iresnet100, iresnet200 = (
    _register(name, blocks) for name, blocks in BLOCKS_PER_STAGE.items()
)
