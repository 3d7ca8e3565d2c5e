"""Built-in Keras layers configured to compute what PyTorch's `Conv2d`, `BatchNorm` and `PReLU` compute.

Used by the networks ported from insightface's arcface_torch (`iresnet`, `mobilefacenet`), so
that their weights map one to one (and `backbones.onnx_import` can load released models):

- convolution with PyTorch's symmetric `padding=p`: an explicit `ZeroPadding2D(p)` then a
  'valid' convolution (Keras 'same' pads 0 before and 1 after at stride 2 on even sizes, PyTorch
  pads 1 on both sides, so 'same' would shift every strided feature map by one pixel);
- BatchNorm with PyTorch's defaults: epsilon 1e-5, running-average momentum 0.1
  (Keras' `momentum` is the weight of the old value: 0.9). PyTorch updates its running variance
  with the unbiased batch variance, Keras with the biased one (a factor n/(n-1), n = B·H·W);
- PReLU with one slope per channel (`shared_axes` = height and width), initialised at 0.25;
- a grouped convolution (1 < groups < channels) as a depthwise convolution with one output per
  (input channel, output of its group) and a sum over each group's inputs (`grouped_conv2d`):
  TensorFlow's CPU kernels compute the gradient of `Conv2D(groups=g)` about 300x slower than a
  dense convolution with 64x the work (measured: MobileFaceNet's 128→128, 64-group 3×3 layer at
  56×56, batch 32: 107 s per forward+backward vs 0.31 s this way).
"""
import math

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


def frozen_scale_layers(model):
    """Names of the BatchNormalizations in `model` whose γ exists but is frozen (Keras does not save that flag)."""
    return [layer.name for layer in model._flatten_layers()
            if isinstance(layer, layers.BatchNormalization) and layer.scale and not layer.gamma.trainable]


def freeze_scales(model, names):
    """Freeze γ of the BatchNormalizations of `model` named in `names` again (after loading a saved model)."""
    for layer in model._flatten_layers():
        if layer.name in names and isinstance(layer, layers.BatchNormalization):
            layer.gamma.trainable = False


def prelu(name, dtype=None):
    """`PReLU` with one slope per channel, slopes start at 0.25 (PyTorch's `nn.PReLU(C)`)."""
    return layers.PReLU(alpha_initializer=initializers.Constant(PRELU_INIT), shared_axes=[1, 2], name=name,
                        dtype=dtype)


def conv2d(inputs, filters, kernel_size, name, strides=1, padding=0, groups=1, initializer="glorot_uniform"):
    """PyTorch `Conv2d(bias=False, padding=padding)` on NHWC `inputs`: (B, H, W, C) → (B, H', W', filters)."""
    if padding:
        inputs = layers.ZeroPadding2D(padding, name=f"{name}_pad")(inputs)
    return layers.Conv2D(filters, kernel_size, strides=strides, padding="valid", groups=groups, use_bias=False,
                         kernel_initializer=initializer, name=name)(inputs)


def grouped_conv2d(inputs, filters, kernel_size, name, strides=1, padding=0, groups=1):
    """PyTorch `Conv2d(C, filters, groups=groups, bias=False)` on NHWC `inputs` with built-in layers and its weight count.

    With a = C/groups inputs and b = filters/groups outputs per group, PyTorch's weight W (filters,
    a, k, k) is held as a depthwise kernel K (k, k, C, b), K[:, :, g·a + j, m] = W[g·b + m, j]:
    the depthwise convolution gives y[g·a + j, m] = x[g·a + j] ⋆ W[g·b + m, j], a reshape to
    (H'·W'·groups, a, b), an average over the a inputs times a sums them, and a reshape gives
    output channel g·b + m, PyTorch's order. Initialised as PyTorch's kaiming-normal fan_out
    (fan_out = filters·k·k). Layers: `name` (the kernel), `name_split`, `name_sum`, `name_scale`, `name_merge`.
    """
    channels = inputs.shape[-1]
    per_group_in, per_group_out = channels // groups, filters // groups
    if padding:
        inputs = layers.ZeroPadding2D(padding, name=f"{name}_pad")(inputs)
    initializer = initializers.RandomNormal(stddev=math.sqrt(2.0 / (filters * kernel_size * kernel_size)))
    out = layers.DepthwiseConv2D(kernel_size, strides=strides, padding="valid", depth_multiplier=per_group_out,
                                 use_bias=False, depthwise_initializer=initializer, name=name)(inputs)
    height, width = out.shape[1:3]
    out = layers.Reshape((height * width * groups, per_group_in, per_group_out), name=f"{name}_split")(out)
    out = layers.AveragePooling2D((1, per_group_in), name=f"{name}_sum")(out)
    out = layers.Rescaling(float(per_group_in), name=f"{name}_scale")(out)
    return layers.Reshape((height, width, filters), name=f"{name}_merge")(out)


def grouped_inputs(layer):
    """Inputs per group of a DepthwiseConv2D that `grouped_conv2d` made (the `_sum` pooling's width), else 1."""
    following = [node.operation for node in layer._outbound_nodes]
    if len(following) == 1 and isinstance(following[0], layers.Reshape):
        after = [node.operation for node in following[0]._outbound_nodes]
        if len(after) == 1 and isinstance(after[0], layers.AveragePooling2D):
            return int(after[0].pool_size[1])
    return 1


def depthwise_conv2d(inputs, kernel_size, name, strides=1, padding=0, initializer="glorot_uniform"):
    """PyTorch `Conv2d(C, C, groups=C, bias=False, padding=padding)` on NHWC `inputs`."""
    if padding:
        inputs = layers.ZeroPadding2D(padding, name=f"{name}_pad")(inputs)
    return layers.DepthwiseConv2D(kernel_size, strides=strides, padding="valid", use_bias=False,
                                  depthwise_initializer=initializer, name=name)(inputs)
