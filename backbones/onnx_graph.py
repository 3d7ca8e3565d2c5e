"""The ONNX side of the import: a face model's graph reduced to its weight-carrying steps, in a canonical order.

Both the ONNX graph and our Keras model are reduced to their weight-carrying operations
(convolution, BatchNorm, PReLU, dense) and residual additions (`Step`), put in one canonical
order (`canonical_order`: a depth-first walk from the output; at an addition the shallower
branch, the shortcut, first), so that they can be compared one by one (`backbones.onnx_import`).
Tensor names never matter. On the ONNX side:

- shape arithmetic (`x.view(x.size(0), -1)` → Shape/Gather/Unsqueeze/Concat/Reshape), Flatten,
  Reshape, Dropout, Identity and Cast (arcface_torch's fp16 wrapper `x.float()`) pass through;
- a MatMul followed by the Add of a constant is one dense layer with a bias;
- the input: the first convolution sees (x − M)·S of the pixels x, with M = 127.5, S = 1/127.5
  (insightface's convention, normalised outside the graph) unless the graph starts with its
  own Sub/Mul/Div/Add by constants (MXNet-converted models: `_minusscalar0` 127.5,
  `_mulscalar0` 0.0078125), which then take raw pixels.

Sources: deepinsight/insightface `recognition/arcface_torch/torch2onnx.py` (opset 11, or 9 from
March to May 2022; BatchNorms after a convolution folded into it by the exporter),
`python-package/insightface/model_zoo/arcface_onnx.py` (Sub/Mul detection, mean and std 127.5),
`deploy/mxnet_to_ort.py` (MXNet exports: PReLU slopes reshaped to (C, 1, 1), BN kept).
"""
import os

import numpy as np

from registry import MissingFileError, UserError

PIXEL_MEAN = 127.5
INSIGHTFACE_PIXEL_SCALE = 127.5
PASS_THROUGH_OPS = {"Flatten", "Reshape", "Dropout", "Identity", "Cast"}
SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Constant", "ConstantOfShape", "Slice"}
INPUT_AFFINE_OPS = {"Sub", "Mul", "Div", "Add"}


class OnnxImportError(UserError):
    """An ONNX file that cannot be imported (unreadable, or not the requested model); one line saying where and why."""


class Step:
    """One weight-carrying operation (or a residual 'add') of either graph, with its predecessors."""

    def __init__(self, kind, inputs, source, **details):
        self.kind, self.inputs, self.source, self.details = kind, list(inputs), source, details
        self.depth = 1 + max((step.depth for step in self.inputs), default=-1)

    def describe(self):
        """The step in words: 'a 3×3 convolution 64→128, stride 2', 'a fully connected layer 512→128 with bias', ..."""
        details = self.details
        if self.kind == "conv":
            height, width = details["kernel"]
            channels_in = details["per_group_in"] * details["groups"]
            words = f"a {height}×{width} convolution {channels_in}→{details['out']}"
            if details["groups"] > 1:
                words += " (depthwise)" if details["groups"] == channels_in == details["out"] else \
                    f" ({details['groups']} groups)"
            pads = tuple(details["pads"])
            if any(pads):
                words += f", padding {pads[0]}" if len(set(pads)) == 1 else f", padding {pads}"
            return words + (f", stride {details['strides'][0]}" if tuple(details["strides"]) != (1, 1) else "")
        if self.kind == "dense":
            bias = " with bias" if details.get("bias") is not None or getattr(details.get("layer"), "use_bias", 0) \
                else ""
            return f"a fully connected layer {details['width_in']}→{details['units']}{bias}"
        if self.kind == "batchnorm":
            return f"a BatchNorm of {details['channels']} channels"
        if self.kind == "prelu":
            return f"a PReLU of {details['channels']} channels"
        return "a residual addition"


def canonical_order(output):
    """Steps reachable from `output` in post-order, inputs of a step visited shallowest first."""
    order, seen = [], set()

    def visit(step):
        if id(step) in seen:
            return
        seen.add(id(step))
        for parent in sorted(step.inputs, key=lambda parent: parent.depth):
            visit(parent)
        order.append(step)

    visit(output)
    return [step for step in order if step.kind != "input"]


class OnnxGraph:
    """An ONNX face model reduced to `steps` (canonical order).

    `input_mean`, `input_scale`: the first convolution sees (x − mean)·scale of the pixels x;
    `normalises_input`: the graph does that itself (it takes raw pixels) rather than expecting
    insightface's normalisation outside; `image_size`: the input height (None where the graph
    leaves it open); `output_width`: the output's last dimension (None where open).
    """

    def __init__(self, path, steps, input_mean, input_scale, normalises_input, image_size, output_width):
        self.path, self.steps = path, steps
        self.input_mean, self.input_scale, self.normalises_input = input_mean, input_scale, normalises_input
        self.image_size, self.output_width = image_size, output_width

    @property
    def embedding_size(self):
        """The output width: the last dense layer's units, else the declared output width."""
        dense = [step for step in self.steps if step.kind == "dense"]
        if dense:
            return int(dense[-1].details["units"])
        if self.output_width:
            return int(self.output_width)
        raise OnnxImportError(f"{self.path!r} has no fully connected layer and no fixed output width: not a face "
                              "embedding model this import knows.")

    def input_images(self, images):
        """What the graph takes for RGB `images` (B, H, W, 3) in 0..255: NCHW float32, normalised by
        insightface's (x − 127.5)/127.5 unless the graph normalises its input itself."""
        nchw = np.asarray(images, np.float32).transpose(0, 3, 1, 2)
        return nchw if self.normalises_input else (nchw - PIXEL_MEAN) / INSIGHTFACE_PIXEL_SCALE


def is_onnx_file(path):
    """True when `path` (a weights or model file, or None) names an ONNX file (by its extension)."""
    return bool(path) and os.fspath(path).lower().endswith(".onnx")


def one_line(error):
    """The message of exception `error` on one line."""
    return " ".join(str(error).split()) or type(error).__name__


def read_onnx(path):
    """The `onnx.ModelProto` in the file `path`; a file that is not a complete ONNX model raises OnnxImportError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"ONNX file {path!r} does not exist.")
    try:
        import onnx
    except ImportError as error:
        raise OnnxImportError("importing .onnx files needs the `onnx` package: pip install 'face-recipes[export]'.") \
            from error
    try:
        model = onnx.load(path)
    except Exception as error:  # noqa: BLE001  (protobuf raises several types for a bad file)
        raise OnnxImportError(f"{path!r} is not an ONNX model, or it is truncated: {one_line(error)}") from None
    if not model.graph.node or not model.graph.output:
        raise OnnxImportError(f"{path!r} is not an ONNX model (it holds no graph); pass the .onnx file of a face "
                              "recognition model.")
    _refuse_undefined_tensors(model.graph, path)
    return model


def _refuse_undefined_tensors(graph, path):
    """A truncated file can still parse: refuse a node that uses a tensor the file does not define."""
    defined = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer} | {""}
    for index, node in enumerate(graph.node):
        missing = [name for name in node.input if name not in defined]
        if missing:
            raise OnnxImportError(f"{path!r} is truncated or damaged: node {index} ({node.op_type} {node.name!r}) "
                                  f"uses tensor {missing[0]!r}, which the file does not define.")
        defined.update(node.output)


def _attributes(node):
    import onnx

    return {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}


def parse_onnx(path):
    """The `OnnxGraph` of the ONNX file `path`."""
    from onnx import numpy_helper

    path = os.fspath(path)
    graph = read_onnx(path).graph
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    real_inputs = [value for value in graph.input if value.name not in constants]
    if len(real_inputs) != 1 or len(graph.output) != 1:
        raise OnnxImportError(f"{path!r}: expected one image input and one embedding output, found inputs "
                              f"{[value.name for value in real_inputs]} and outputs {[v.name for v in graph.output]}.")
    start = Step("input", [], "input")
    produced = {real_inputs[0].name: start}
    affine = [np.ones(1), np.zeros(1)]  # v = a·x + b: the graph's own input normalisation, if any
    normalises_input = False
    for index, node in enumerate(graph.node):
        where = f"node {index} ({node.op_type} {node.name!r})"
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(_attributes(node)["value"])
            continue
        data = [produced[name] for name in node.input if name in produced]
        if not data or node.op_type in SHAPE_OPS:
            continue  # shape arithmetic or constants only
        operands = [constants.get(name) for name in node.input]
        try:
            if node.op_type in INPUT_AFFINE_OPS and data[0] is start and len(data) == 1:
                constant = np.asarray(next(value for value in operands if value is not None), np.float64).reshape(-1)
                _compose_affine(affine, node.op_type, constant, node.input[0] in produced, where)
                normalises_input = True
                produced[node.output[0]] = start
                continue
            produced[node.output[0]] = _onnx_step(node, data, operands, where)
        except OnnxImportError as error:
            raise OnnxImportError(f"{path!r}: {error}") from None
    output = produced.get(graph.output[0].name)
    if output is None:
        raise OnnxImportError(f"{path!r}: the graph's output {graph.output[0].name!r} does not depend on its input.")
    mean, scale = (-affine[1] / affine[0], affine[0]) if normalises_input else \
        (PIXEL_MEAN, 1.0 / INSIGHTFACE_PIXEL_SCALE)
    return OnnxGraph(path, canonical_order(output), mean, scale, normalises_input, _fixed_dim(real_inputs[0], 2),
                     _fixed_dim(graph.output[0], -1))


def _fixed_dim(value, axis):
    """Dimension `axis` of a graph input/output, or None where it is symbolic or absent."""
    dims = value.type.tensor_type.shape.dim
    if not dims or len(dims) <= (axis if axis >= 0 else -axis - 1):
        return None
    dim = dims[axis]
    return int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value > 0 else None


def _compose_affine(affine, op_type, constant, data_first, where):
    """Update v = a·x + b (per channel) for `v op constant` (or `constant op v`)."""
    scale, offset = affine
    if op_type == "Add":
        affine[1] = offset + constant
    elif op_type == "Sub" and data_first:
        affine[1] = offset - constant
    elif op_type == "Mul":
        affine[0], affine[1] = scale * constant, offset * constant
    elif op_type == "Div" and data_first:
        affine[0], affine[1] = scale / constant, offset / constant
    else:
        raise OnnxImportError(f"{where}: an input normalisation `constant {op_type} x` is not supported.")


def _onnx_step(node, data, operands, where):
    attributes = _attributes(node)
    if node.op_type in PASS_THROUGH_OPS:
        return data[0]
    if node.op_type == "Conv":
        return _conv_step(node, data, operands, attributes, where)
    if node.op_type == "BatchNormalization":
        gamma, beta, mean, variance = operands[1:5]
        return Step("batchnorm", data, where, channels=gamma.shape[0], gamma=gamma, beta=beta, mean=mean,
                    variance=variance, epsilon=float(attributes.get("epsilon", 1e-5)))
    if node.op_type == "PRelu":
        slope = operands[1].reshape(-1)
        return Step("prelu", data, where, channels=slope.shape[0], slope=slope)
    if node.op_type in ("Gemm", "MatMul"):
        return _dense_step(data, operands, attributes, where)
    if node.op_type == "Add" and len(data) == 1:
        constant = next(value for value in operands if value is not None)
        previous = data[0]
        if previous.kind == "dense" and previous.details["bias"] is None:
            previous.details["bias"] = constant.reshape(-1)
            previous.source += f" + {where}"
            return previous
        raise OnnxImportError(f"{where}: adds a constant after {previous.describe()} ({previous.source}); "
                              "only a bias after a MatMul is supported.")
    if node.op_type == "Add" and len(data) == 2:
        return Step("add", data, where)
    raise OnnxImportError(f"{where}: ONNX operation {node.op_type} is not part of an IResNet or MobileFaceNet, "
                          "so the import does not support it.")


def _conv_step(node, data, operands, attributes, where):
    weight = operands[1]
    if weight is None:
        raise OnnxImportError(f"{where}: the kernel is not a constant of the graph.")
    if any(value != 1 for value in attributes.get("dilations", [1, 1])):
        raise OnnxImportError(f"{where}: dilated convolutions are not supported.")
    if attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise OnnxImportError(f"{where}: auto_pad={attributes['auto_pad']!r} is not supported; explicit pads are.")
    return Step("conv", data, where, out=weight.shape[0], per_group_in=weight.shape[1], kernel=tuple(weight.shape[2:]),
                strides=tuple(attributes.get("strides", [1, 1])), pads=tuple(attributes.get("pads", [0, 0, 0, 0])),
                groups=attributes.get("group", 1), weight=weight, bias=operands[2] if len(operands) > 2 else None)


def _dense_step(data, operands, attributes, where):
    weight = operands[1]
    if weight is None:
        raise OnnxImportError(f"{where}: the dense weight is not a constant of the graph.")
    if attributes.get("transB", 0):
        weight = weight.T
    if attributes.get("alpha", 1.0) != 1.0 or attributes.get("beta", 1.0) != 1.0 or attributes.get("transA", 0):
        raise OnnxImportError(f"{where}: a Gemm with alpha, beta or transA is not supported.")
    bias = operands[2] if len(operands) > 2 else None
    return Step("dense", data, where, width_in=weight.shape[0], units=weight.shape[1], weight=weight, bias=bias)
