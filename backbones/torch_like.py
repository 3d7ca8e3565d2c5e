"""Built-in Keras layers configured to compute what PyTorch's `Conv2d`, `BatchNorm` and `PReLU` compute.

Used by the networks ported from insightface's arcface_torch (`iresnet`, `mobilefacenet`), so
that their weights map one to one (and `backbones.onnx_import` can load released models):

- convolution with PyTorch's symmetric `padding=p`: an explicit `ZeroPadding2D(p)` then a
  'valid' convolution (Keras 'same' pads 0 before and 1 after at stride 2 on even sizes, PyTorch
  pads 1 on both sides, so 'same' would shift every strided feature map by one pixel);
- BatchNorm with PyTorch's defaults: epsilon 1e-5, running-average momentum 0.1
  (Keras' `momentum` is the weight of the old value: 0.9). PyTorch updates its running variance
  with the unbiased batch variance, Keras with the biased one (a factor n/(n-1), n = B·H·W);
- PReLU with one slope per channel (`shared_axes` = height and width), initialised at 0.25.
"""
from keras import initializers, layers

BATCHNORM_EPSILON = 1e-5
BATCHNORM_MOMENTUM = 0.9
PRELU_INIT = 0.25


def batchnorm(name, scale=True, synchronized=False, dtype=None):
    """`BatchNormalization` with PyTorch's epsilon and momentum."""
    return layers.BatchNormalization(epsilon=BATCHNORM_EPSILON, momentum=BATCHNORM_MOMENTUM, scale=scale,
                                     synchronized=synchronized, name=name, dtype=dtype)


def fixed_scale_batchnorm(inputs, name, synchronized=False, dtype=None):
    """PyTorch's `BatchNorm` with its weight frozen at 1 (`weight.requires_grad = False`) on `inputs`.

    γ is a real variable, held at 1 and left out of the trainable weights, so the weight count
    equals PyTorch's; the layer still normalises with batch statistics in training.
    """
    layer = batchnorm(name, synchronized=synchronized, dtype=dtype)
    outputs = layer(inputs)
    layer.gamma.trainable = False
    return outputs


def has_fixed_scale(layer):
    """True when a `BatchNormalization`'s γ is not trained: built with scale=False or frozen at 1."""
    return not layer.scale or not layer.gamma.trainable


def prelu(name):
    """`PReLU` with one slope per channel, slopes start at 0.25 (PyTorch's `nn.PReLU(C)`)."""
    return layers.PReLU(alpha_initializer=initializers.Constant(PRELU_INIT), shared_axes=[1, 2], name=name)


def conv2d(inputs, filters, kernel_size, name, strides=1, padding=0, groups=1, initializer="glorot_uniform"):
    """PyTorch `Conv2d(bias=False, padding=padding)` on NHWC `inputs`: (B, H, W, C) → (B, H', W', filters)."""
    if padding:
        inputs = layers.ZeroPadding2D(padding, name=f"{name}_pad")(inputs)
    return layers.Conv2D(filters, kernel_size, strides=strides, padding="valid", groups=groups, use_bias=False,
                         kernel_initializer=initializer, name=name)(inputs)


def depthwise_conv2d(inputs, kernel_size, name, strides=1, padding=0, initializer="glorot_uniform"):
    """PyTorch `Conv2d(C, C, groups=C, bias=False, padding=padding)` on NHWC `inputs`."""
    if padding:
        inputs = layers.ZeroPadding2D(padding, name=f"{name}_pad")(inputs)
    return layers.DepthwiseConv2D(kernel_size, strides=strides, padding="valid", use_bias=False,
                                  depthwise_initializer=initializer, name=name)(inputs)
