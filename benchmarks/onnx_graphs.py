"""ONNX graphs of insightface's IResNet and MobileFaceNet variants as their exporters write them, built without PyTorch.

Written from insightface's `recognition/arcface_torch/backbones/{iresnet,mobilefacenet}.py` over
their history and what `torch.onnx.export(..., opset_version=11 (9 in 2022), do_constant_folding=True)`
makes of them: NCHW, Conv with symmetric `pads`, PRelu slopes (C, 1, 1), Flatten (`torch.flatten`),
Gemm(transB=1) (or MatMul for a Linear without bias), BatchNormalization nodes; with `fold=True`
every BatchNorm that follows a convolution is folded into it (the Conv gets a bias), as the
exporter does. MobileFaceNet's `Flatten` module (`x.view(x.size(0), -1)`) becomes the
Shape/Gather/Unsqueeze/Concat/Reshape chain the exporter writes for it (a Reshape by a constant
shape once simplified by onnxsim, `torch2onnx.py --simplify`); arcface_torch's fp16 wrapper
(`self.fc(x.float())`) adds a Cast. `mxnet_iresnet_graph` writes an MXNet `fresnet.py` model as
insightface's `deploy/mxnet_to_ort.py` converts it (`arcface_r100_v1`): in-graph `_minusscalar0`
(Sub 127.5) and `_mulscalar0` (Mul 1/128), BN kept with MXNet's epsilon 2e-5, Dropout and
Flatten before the FC, initializers also listed as graph inputs (IR 3). Tensor names are
opaque, like the released files'. Weights, BN statistics and PReLU slopes are random and
non-trivial, so that any mapping error shows in the embeddings.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EPSILON = 1e-5


class GraphWriter:
    """Appends nodes and random initializers; `model()` returns the `onnx.ModelProto`."""

    def __init__(self, seed=0, fold=False, image_size=32, epsilon=EPSILON, opset=11):
        self.rng = np.random.default_rng(seed)
        self.fold, self.image_size, self.epsilon, self.opset = fold, image_size, epsilon, opset
        self.nodes, self.initializers, self.count = [], [], 0

    def name(self, op_type):
        self.count += 1
        return f"onnx::{op_type}_{self.count}"

    def constant(self, array, dtype=np.float32):
        name = self.name("Constant")
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def view_as_batch_by_rest(self, inputs):
        """`x.view(x.size(0), -1)` as PyTorch exports it at opset 11: Shape → Gather → Unsqueeze → Concat → Reshape."""
        batch = self.node("Gather", [self.node("Shape", [inputs]), self.constant(0, np.int64)], axis=0)
        shape = self.node("Concat", [self.node("Unsqueeze", [batch], axes=[0]), self.constant([-1], np.int64)], axis=0)
        return self.node("Reshape", [inputs, shape])

    def view_as_batch_by_rest_simplified(self, inputs):
        """The same once simplified: one Reshape by a constant shape (0 keeps the batch dimension)."""
        return self.node("Reshape", [inputs, self.constant([0, -1], np.int64)])

    def node(self, op_type, inputs, name=None, **attributes):
        output = self.name(op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name or f"{op_type}_{self.count}",
                                           **attributes))
        return output

    def batchnorm_parameters(self, channels):
        """Random γ, β, running mean, running variance (C,) each."""
        return (self.rng.uniform(0.5, 1.5, channels), self.rng.normal(0, 0.2, channels),
                self.rng.normal(0, 0.2, channels), self.rng.uniform(0.5, 1.5, channels))

    def batchnorm(self, inputs, channels):
        return self.node("BatchNormalization", [inputs, *map(self.constant, self.batchnorm_parameters(channels))],
                         epsilon=self.epsilon)

    def conv_bn(self, inputs, channels_in, channels_out, kernel, stride=1, pad=0, groups=1):
        """Conv (no bias) → BN, or one Conv with the BN folded in (bias) when `fold`."""
        weight = self.rng.normal(0, np.sqrt(2.0 / (kernel * kernel * channels_in / groups)),
                                 (channels_out, channels_in // groups, kernel, kernel))
        attributes = dict(kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4, group=groups)
        if not self.fold:
            return self.batchnorm(self.node("Conv", [inputs, self.constant(weight)], **attributes), channels_out)
        gamma, beta, mean, variance = self.batchnorm_parameters(channels_out)
        factor = gamma / np.sqrt(variance + self.epsilon)
        bias = beta - mean * factor
        return self.node("Conv", [inputs, self.constant(weight * factor[:, None, None, None]), self.constant(bias)],
                         **attributes)

    def prelu(self, inputs, channels):
        return self.node("PRelu", [inputs, self.constant(self.rng.uniform(0.05, 0.4, (channels, 1, 1)))])

    def dense(self, inputs, channels_in, units, bias=True):
        weight = self.rng.normal(0, 1.0 / np.sqrt(channels_in), (units, channels_in))
        if bias:
            return self.node("Gemm", [inputs, self.constant(weight), self.constant(self.rng.normal(0, 0.1, units))],
                             alpha=1.0, beta=1.0, transB=1)
        return self.node("MatMul", [inputs, self.constant(weight.T)])

    def model(self, output, units, initializers_as_inputs=False):
        size = self.image_size
        inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["None", 3, size, size])]
        if initializers_as_inputs:  # ONNX IR < 4 (old MXNet exports): every initializer is also a graph input
            inputs += [helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
                       for tensor in self.initializers]
        graph = helper.make_graph(self.nodes, "face", inputs,
                                  [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["None", units])],
                                  self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 3 if initializers_as_inputs else 7
        onnx.checker.check_model(model)
        return model


def normalised_input(writer, normalise_inside):
    """The graph input, through `Sub 127.5, Mul 1/128` when the graph normalises raw pixels itself."""
    if not normalise_inside:
        return "data"
    return writer.node("Mul", [writer.node("Sub", ["data", writer.constant(127.5)]), writer.constant(1 / 128)])


def iresnet_body(writer, x, blocks_per_stage):
    """arcface_torch `IResNet` (or MXNet `fresnet.py`) from `conv1` to the last addition: (B, 512, S/16, S/16)."""
    x = writer.prelu(writer.conv_bn(x, 3, 64, 3, pad=1), 64)
    inplanes = 64
    for planes, blocks in zip((64, 128, 256, 512), blocks_per_stage):
        for index in range(blocks):
            stride = 2 if index == 0 else 1
            out = writer.conv_bn(writer.batchnorm(x, inplanes), inplanes, planes, 3, pad=1)
            out = writer.conv_bn(writer.prelu(out, planes), planes, planes, 3, stride, pad=1)
            identity = writer.conv_bn(x, inplanes, planes, 1, stride) if index == 0 else x
            x, inplanes = writer.node("Add", [out, identity]), planes
    return x


def iresnet_graph(blocks_per_stage=(2, 2, 2, 2), units=16, image_size=32, fold=False, normalise_inside=False,
                  seed=0, fp16=False, opset=11):
    """arcface_torch `IResNet(IBasicBlock, blocks_per_stage, num_features=units, fp16=fp16)` in eval mode, as ONNX."""
    writer = GraphWriter(seed, fold, image_size, opset=opset)
    x = iresnet_body(writer, normalised_input(writer, normalise_inside), blocks_per_stage)
    side = image_size // 16
    x = writer.node("Flatten", [writer.batchnorm(x, 512)], axis=1)
    if fp16:
        x = writer.node("Cast", [x], to=TensorProto.FLOAT)  # `self.fc(x.float())`
    x = writer.batchnorm(writer.dense(x, 512 * side * side, units), units)
    return writer.model(x, units)


def mxnet_iresnet_graph(blocks_per_stage=(2, 2, 2, 2), units=16, image_size=32, seed=0):
    """MXNet `fresnet.py` (LResNet-E-IR, fc_type 'E', as `arcface_r100_v1`) converted to ONNX (opset 8)."""
    writer = GraphWriter(seed, fold=False, image_size=image_size, epsilon=2e-5, opset=8)
    x = writer.node("Identity", ["data"], name="id")
    x = writer.node("Sub", [x, writer.constant(127.5)], name="_minusscalar0")
    x = writer.node("Mul", [x, writer.constant(0.0078125)], name="_mulscalar0")
    x = writer.batchnorm(iresnet_body(writer, x, blocks_per_stage), 512)
    side = image_size // 16
    x = writer.node("Flatten", [writer.node("Dropout", [x], ratio=0.4)], axis=1)
    x = writer.batchnorm(writer.dense(x, 512 * side * side, units), units)
    return writer.model(x, units, initializers_as_inputs=True)


def mobilefacenet_graph(units=16, image_size=32, fold=False, normalise_inside=False, seed=0, scale=2,
                        blocks=(1, 4, 6, 2), embedding_block="gdc", simplified=False, opset=11):
    """arcface_torch `MobileFaceNet(False, units, blocks, scale)` in eval mode, as ONNX; `embedding_block` "gdc"
    (arcface_torch) or "pointwise_fc" (insightface's released w600k_mbf); `simplified`: after onnxsim."""
    writer = GraphWriter(seed, fold, image_size, opset=opset)

    def conv_block(x, channels_in, channels_out, kernel, stride=1, pad=0, groups=1, activation=True):
        x = writer.conv_bn(x, channels_in, channels_out, kernel, stride, pad, groups)
        return writer.prelu(x, channels_out) if activation else x

    def depthwise(x, channels_in, channels_out, groups, stride, residual):
        out = conv_block(x, channels_in, groups, 1)
        out = conv_block(out, groups, groups, 3, stride, 1, groups)
        out = conv_block(out, groups, channels_out, 1, activation=False)
        return writer.node("Add", [x, out]) if residual else out

    def residual(x, channels, count, groups):
        for _ in range(count):
            x = depthwise(x, channels, channels, groups, 1, True)
        return x

    width = 64 * scale
    x = conv_block(normalised_input(writer, normalise_inside), 3, width, 3, 2, 1)
    x = conv_block(x, width, width, 3, 1, 1, groups=64) if blocks[0] == 1 else residual(x, width, blocks[0], 128)
    x = residual(depthwise(x, width, width, 128, 2, False), width, blocks[1], 128)
    x = residual(depthwise(x, width, 2 * width, 256, 2, False), 2 * width, blocks[2], 256)
    x = residual(depthwise(x, 2 * width, 2 * width, 512, 2, False), 2 * width, blocks[3], 256)
    x = conv_block(x, 2 * width, 512, 1)
    side = image_size // 16
    if embedding_block == "gdc":
        x = conv_block(x, 512, 512, side, groups=512, activation=False)
        x = (writer.view_as_batch_by_rest_simplified if simplified else writer.view_as_batch_by_rest)(x)  # `Flatten`
        x = writer.dense(x, 512, units, bias=False)
    else:
        x = writer.node("Flatten", [conv_block(x, 512, 64, 1)], axis=1)
        x = writer.dense(x, 64 * side * side, units)
    return writer.model(writer.batchnorm(x, units), units)
