"""IResNet-18…200 and MobileFaceNet: exact weight counts and MACs of arcface_torch, PyTorch padding, own embedding blocks."""
import keras
import numpy as np
import pytest
from keras import layers

import backbones
from backbones.embedding import embedding_block_of, pooled_embedding_block
from backbones.onnx_import import depthwise_kernel
from backbones.torch_like import conv2d, depthwise_conv2d, grouped_conv2d
from benchmarks.macs import model_macs

# PyTorch parameters + BatchNorm running statistics of arcface_torch's models at 112×112, 512-d,
# counted from insightface's recognition/arcface_torch/backbones/{iresnet,mobilefacenet}.py.
ARCFACE_TORCH_WEIGHTS = {
    "iresnet18": 24_040_320,
    "iresnet34": 34_165_184,
    "iresnet50": 43_628_992,
    "iresnet100": 65_225_792,
    "iresnet200": 118_969_984,
    "mobilefacenet": 2_083_328,
}
ARCFACE_TORCH_GMACS = {"iresnet50": 6.31, "iresnet100": 12.09, "mobilefacenet": 0.44}


@pytest.mark.parametrize("name", sorted(ARCFACE_TORCH_WEIGHTS))
def test_weight_count_equals_arcface_torch(name):
    model = backbones.build_embedding_model(name, embedding_size=512, image_size=112)
    assert model.output.shape == (None, 512)
    assert model.count_params() == ARCFACE_TORCH_WEIGHTS[name]


@pytest.mark.slow
def test_iresnet_output_scale_is_frozen_at_one():
    """arcface_torch's `features.weight.requires_grad = False`: γ stays 1 while β and the rest train."""
    model = backbones.build_embedding_model("iresnet18", embedding_size=8, image_size=32)
    features = model.get_layer("features")
    trainable = {variable.path for variable in model.trainable_weights}
    assert features.gamma.path not in trainable and features.beta.path in trainable
    assert [layer.name for layer in model.layers if isinstance(layer, layers.BatchNormalization)
            and not layer.gamma.trainable] == ["features"]
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    model.fit(np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)), np.ones((4, 8)), verbose=0)
    np.testing.assert_array_equal(features.gamma.numpy(), np.ones(8, np.float32))
    assert not np.allclose(features.beta.numpy(), 0.0)


@pytest.mark.parametrize("name", sorted(ARCFACE_TORCH_GMACS))
def test_macs_agree_with_arcface_torch_within_two_percent(name):
    macs = model_macs(backbones.build_embedding_model(name, embedding_size=512, image_size=112))
    assert macs / 1e9 == pytest.approx(ARCFACE_TORCH_GMACS[name], rel=0.02)


def test_mac_counter_against_closed_form():
    inputs = keras.Input((10, 10, 4))
    conv = layers.Conv2D(6, 3, strides=2, padding="same", groups=2)(inputs)  # 5·5·9·2·6
    depthwise = layers.DepthwiseConv2D(5, padding="valid")(conv)  # 1·1·25·6
    dense = layers.Dense(7)(layers.Flatten()(depthwise))  # 6·7
    assert model_macs(keras.Model(inputs, dense)) == 5 * 5 * 9 * 2 * 6 + 25 * 6 + 6 * 7


def numpy_conv(images, kernel, stride, padding, depthwise=False):
    """PyTorch's Conv2d by definition: symmetric zero padding, then correlation. (B, H, W, C) NHWC, kernel HWIO."""
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    size = kernel.shape[0]
    out_h = (padded.shape[1] - size) // stride + 1
    out_w = (padded.shape[2] - size) // stride + 1
    channels_out = images.shape[-1] if depthwise else kernel.shape[-1]
    out = np.zeros((images.shape[0], out_h, out_w, channels_out))
    for row in range(out_h):
        for col in range(out_w):
            patch = padded[:, row * stride:row * stride + size, col * stride:col * stride + size, :]
            if depthwise:
                out[:, row, col, :] = np.einsum("bhwc,hwc->bc", patch, kernel[:, :, :, 0])
            else:
                out[:, row, col, :] = np.einsum("bhwc,hwco->bo", patch, kernel)
    return out


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_torch_like_convolution_pads_symmetrically(stride, depthwise):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    inputs = keras.Input((8, 8, 3))
    if depthwise:
        outputs = depthwise_conv2d(inputs, 3, "conv", strides=stride, padding=1)
    else:
        outputs = conv2d(inputs, 5, 3, "conv", strides=stride, padding=1)
    model = keras.Model(inputs, outputs)
    kernel = model.get_layer("conv").get_weights()[0]
    expected = numpy_conv(images, kernel, stride, 1, depthwise)
    np.testing.assert_allclose(np.asarray(model(images)), expected, rtol=1e-5, atol=1e-5)


def test_field_backbones_bring_their_own_embedding_block():
    assert embedding_block_of("resnet50v2") is pooled_embedding_block
    iresnet = backbones.build_embedding_model("iresnet18", embedding_size=8, image_size=112)
    assert iresnet.get_layer("fc").input.shape == (None, 7 * 7 * 512)
    mobile = backbones.build_embedding_model("mobilefacenet", embedding_size=8, image_size=112)
    assert mobile.get_layer("gdc_conv").kernel_size == (7, 7)
    assert mobile.get_layer("gdc_fc").use_bias is False
    for model in (iresnet, mobile):
        norms = [layer for layer in model._flatten_layers() if isinstance(layer, layers.BatchNormalization)]
        assert {(layer.epsilon, layer.momentum) for layer in norms} == {(1e-5, 0.9)}
        slopes = [layer for layer in model._flatten_layers() if isinstance(layer, layers.PReLU)]
        assert slopes and all(np.all(layer.alpha.numpy() == 0.25) and layer.alpha.shape == (1, 1, layer.alpha.shape[-1])
                              for layer in slopes)


@pytest.mark.parametrize("channels, filters, groups, stride", [(8, 8, 4, 1), (6, 9, 3, 2), (4, 4, 2, 1)])
def test_grouped_convolution_equals_pytorchs_grouped_conv(channels, filters, groups, stride):
    """grouped_conv2d vs PyTorch's grouped Conv2d by definition: group g convolves its a inputs into its b outputs."""
    rng = np.random.default_rng(1)
    images = rng.normal(size=(2, 7, 7, channels)).astype(np.float32)
    weight = rng.normal(size=(filters, channels // groups, 3, 3))  # PyTorch's OIHW, I = channels per group
    inputs = keras.Input((7, 7, channels))
    model = keras.Model(inputs, grouped_conv2d(inputs, filters, 3, "conv", strides=stride, padding=1, groups=groups))
    model.get_layer("conv").kernel.assign(depthwise_kernel(weight.transpose(2, 3, 1, 0), groups).astype(np.float32))
    a, b = channels // groups, filters // groups
    expected = np.concatenate([numpy_conv(images[..., g * a:(g + 1) * a], weight[g * b:(g + 1) * b].transpose(2, 3, 1, 0),
                                          stride, 1) for g in range(groups)], axis=-1)
    np.testing.assert_allclose(np.asarray(model(images)), expected, rtol=1e-4, atol=1e-4)
    assert model.count_params() == weight.size


def test_mobilefacenet_pointwise_fc_block_has_the_released_w600k_mbf_weights():
    """arcface_torch's get_mbf up to conv_sep (2,083,328 − the GDC block's 291,328) + the w600k_mbf block: 1×1 conv
    512→64 (32,768) + BN (256) + PReLU (64) + FC 3,136→512 with bias (1,606,144) + BN (2,048) = 3,433,280."""
    model = backbones.build_embedding_model("mobilefacenet", embedding_size=512, image_size=112,
                                            backbone_args={"embedding_block": "pointwise_fc"})
    assert model.count_params() == 3_433_280
    assert model.get_layer("pointwise_fc").input.shape == (None, 64 * 7 * 7)


@pytest.mark.parametrize("options, message", [
    ({"embedding_block": "gnap"}, "embedding_block='gnap' is not one of gdc, pointwise_fc"),
    ({"blocks": [1, 4, 6]}, r"blocks=\[1, 4, 6\] and scale=2; need four block counts"),
    ({"scale": 1.5}, "scale=1.5; need four block counts >= 1 and a whole scale"),
])
def test_mobilefacenet_options_are_checked(options, message):
    from registry import UserError

    with pytest.raises(UserError, match=message):
        backbones.build_embedding_model("mobilefacenet", embedding_size=8, image_size=32, backbone_args=options)


@pytest.mark.parametrize("name", ["iresnet18", "mobilefacenet"])
def test_every_kernel_is_drawn_on_its_own_and_the_seed_repeats_them(name):
    """arcface_torch draws each layer's weights on their own (`nn.init.normal_` / `kaiming_normal_` per module); a
    Keras initializer instance shared by layers would give every kernel of one shape the same values."""
    def kernels():
        keras.utils.set_random_seed(5)
        model = backbones.build_embedding_model(name, 64, dropout=0.0, image_size=112)
        return [np.asarray(weight) for weight in model.weights if weight.path.endswith("kernel")]

    first, again = kernels(), kernels()
    for index, kernel in enumerate(first):
        assert not any(kernel.shape == other.shape and np.array_equal(kernel, other) for other in first[:index])
    assert all(np.array_equal(kernel, repeated) for kernel, repeated in zip(first, again))
