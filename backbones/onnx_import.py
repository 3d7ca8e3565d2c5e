"""Import the weights of an ONNX face model (insightface's model zoo, arcface_torch's `torch2onnx.py`) into our Keras model.

The ONNX graph is matched to the Keras embedding model by structure, never by tensor names:
both are reduced to their weight-carrying operations (convolution, BatchNorm, PReLU, dense) and
residual additions, and put in one canonical order (a depth-first walk from the output; at an
addition the shallower branch, the shortcut, first). The two sequences are compared one by one
(kind, kernel size, widths, strides, padding, groups); the first difference is refused with the
Keras layer's name and the ONNX node. What the import takes care of:

- PyTorch's exporter (`torch.onnx.export(..., do_constant_folding=True)`) folds a BatchNorm into
  the convolution before it (the Conv gets a bias, the BN node disappears): our BN then gets
  γ = 1, β = bias, mean 0, variance 1 − ε, i.e. the identity plus the bias;
- BatchNorms kept in the graph (a block's pre-activation `bn1`, the output BNs); a different
  epsilon is folded into the variance; a final BN with fixed scale (γ frozen at 1) takes the
  graph's γ through the dense layer before it;
- OIHW → HWIO kernels, depthwise (C, 1, k, k) → (k, k, C, 1), PReLU slopes per channel;
- a dense layer after a flatten of an (h, w, c) map: PyTorch flattens c·h·w, Keras h·w·c, so
  the rows are permuted;
- the input: the graph's first convolution sees (x − M)·S of the RGB pixels x, with M = 127.5,
  S = 1/127.5 (insightface's convention, normalised outside the graph) unless the graph
  starts with its own Sub/Mul/Div/Add by constants (as some released files do). Ours sees
  (x − 127.5)/128, so the first kernel is multiplied by 128·S; a mean other than 127.5 is refused.

Sources: deepinsight/insightface `recognition/arcface_torch/torch2onnx.py` (opset 11, constant
folding), `python-package/insightface/model_zoo/arcface_onnx.py` (Sub/Mul detection, input mean
127.5 and std 127.5).
"""
import os

import numpy as np
from keras import layers

from backbones.torch_like import grouped_inputs, has_fixed_scale
from registry import MissingFileError, UserError

PIXEL_MEAN = 127.5
OUR_PIXEL_SCALE = 128.0
INSIGHTFACE_PIXEL_SCALE = 127.5
PASS_THROUGH_OPS = {"Flatten", "Reshape", "Dropout", "Identity", "Cast"}
SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Constant", "ConstantOfShape", "Slice"}
INPUT_AFFINE_OPS = {"Sub", "Mul", "Div", "Add"}
PASS_THROUGH_LAYERS = (layers.InputLayer, layers.ZeroPadding2D, layers.Dropout, layers.Flatten, layers.Rescaling)
GROUP_SUM_LAYERS = (layers.Reshape, layers.AveragePooling2D)  # the sum of a `torch_like.grouped_conv2d`
WEIGHT_LAYERS = (layers.Conv2D, layers.DepthwiseConv2D, layers.BatchNormalization, layers.PReLU, layers.Dense)


class OnnxImportError(UserError, ValueError):
    """An ONNX file that cannot be imported into the requested Keras model; the message says where and why."""


class Step:
    """One weight-carrying operation (or a residual 'add') of either graph, with its predecessors."""

    def __init__(self, kind, inputs, source, **details):
        self.kind, self.inputs, self.source, self.details = kind, list(inputs), source, details
        self.depth = 1 + max((step.depth for step in self.inputs), default=-1)

    def describe(self):
        shown = {key: value for key, value in self.details.items()
                 if key != "layer" and value is not None and not isinstance(value, np.ndarray)}
        return f"{self.kind} {shown}" if shown else self.kind


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


# ---- the ONNX side ---------------------------------------------------------------------------

def _attributes(node):
    import onnx

    return {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}


def onnx_steps(model):
    """(canonical step sequence, M, S, normalises_input) of an `onnx.ModelProto`.

    The first convolution sees (x − M)·S of the pixels x (per channel); `normalises_input` says
    whether the graph does that itself (it then takes raw pixels) or expects it done outside.
    """
    from onnx import numpy_helper

    graph = model.graph
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    real_inputs = [value for value in graph.input if value.name not in constants]
    if len(real_inputs) != 1 or len(graph.output) != 1:
        raise OnnxImportError(f"expected one image input and one embedding output, found inputs "
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
        if not data:
            continue  # shape arithmetic or constants only
        if node.op_type in SHAPE_OPS:
            continue
        operands = [constants.get(name) for name in node.input]
        if node.op_type in INPUT_AFFINE_OPS and data[0] is start and len(data) == 1:
            constant = np.asarray(next(value for value in operands if value is not None), np.float64).reshape(-1)
            _compose_affine(affine, node.op_type, constant, node.input[0] in produced, where)
            normalises_input = True
            produced[node.output[0]] = start
            continue
        step = _onnx_step(node, data, operands, where)
        produced[node.output[0]] = step
    output = produced.get(graph.output[0].name)
    if output is None:
        raise OnnxImportError(f"the graph's output {graph.output[0].name!r} does not depend on its input.")
    if not normalises_input:  # insightface's convention, applied outside the graph
        return canonical_order(output), PIXEL_MEAN, 1.0 / INSIGHTFACE_PIXEL_SCALE, False
    scale, offset = affine
    return canonical_order(output), -offset / scale, scale, True


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
        weight = operands[1]
        if weight is None:
            raise OnnxImportError(f"{where}: the kernel is not a constant of the graph.")
        if any(value != 1 for value in attributes.get("dilations", [1, 1])):
            raise OnnxImportError(f"{where}: dilated convolutions are not supported.")
        pads = list(attributes.get("pads", [0, 0, 0, 0]))
        return Step("conv", data, where, out=weight.shape[0], per_group_in=weight.shape[1],
                    kernel=tuple(weight.shape[2:]), strides=tuple(attributes.get("strides", [1, 1])),
                    pads=tuple(pads), groups=attributes.get("group", 1), weight=weight,
                    bias=operands[2] if len(operands) > 2 else None)
    if node.op_type == "BatchNormalization":
        gamma, beta, mean, variance = operands[1:5]
        return Step("batchnorm", data, where, channels=gamma.shape[0], gamma=gamma, beta=beta, mean=mean,
                    variance=variance, epsilon=float(attributes.get("epsilon", 1e-5)))
    if node.op_type == "PRelu":
        slope = operands[1].reshape(-1)
        return Step("prelu", data, where, channels=slope.shape[0], slope=slope)
    if node.op_type in ("Gemm", "MatMul"):
        weight = operands[1]
        if weight is None:
            raise OnnxImportError(f"{where}: the dense weight is not a constant of the graph.")
        if attributes.get("transB", 0):
            weight = weight.T
        if attributes.get("alpha", 1.0) != 1.0 or attributes.get("beta", 1.0) != 1.0 or attributes.get("transA", 0):
            raise OnnxImportError(f"{where}: a Gemm with alpha, beta or transA is not supported.")
        bias = operands[2] if len(operands) > 2 else None
        return Step("dense", data, where, width_in=weight.shape[0], units=weight.shape[1], weight=weight, bias=bias)
    if node.op_type == "Add" and len(data) == 1:
        constant = next(value for value in operands if value is not None)
        previous = data[0]
        if previous.kind == "dense" and previous.details["bias"] is None:
            previous.details["bias"] = constant.reshape(-1)
            previous.source += f" + {where}"
            return previous
        raise OnnxImportError(f"{where}: adds a constant after {previous.kind} ({previous.source}); "
                              "only a bias after a MatMul is supported.")
    if node.op_type == "Add" and len(data) == 2:
        return Step("add", data, where)
    raise OnnxImportError(f"{where}: ONNX operation {node.op_type} is not supported by the import.")


# ---- the Keras side --------------------------------------------------------------------------

def keras_steps(model):
    """The canonical step sequence of a functional Keras model (nested functional models inlined)."""
    start = Step("input", [], "input")

    def walk(functional, input_steps):
        steps = {id(tensor): step for tensor, step in zip(functional.inputs, input_steps)}
        for layer in functional.layers:
            if isinstance(layer, layers.InputLayer):
                continue
            node = layer._inbound_nodes[-1]
            inputs = [steps[id(tensor)] for tensor in node.input_tensors]
            if hasattr(layer, "layers") and hasattr(layer, "inputs"):
                outputs = walk(layer, inputs)
            elif isinstance(layer, PASS_THROUGH_LAYERS) or _sums_a_group(layer):
                outputs = inputs[:1]
            elif isinstance(layer, layers.Add):
                outputs = [Step("add", inputs, f"layer {layer.name!r}")]
            elif isinstance(layer, WEIGHT_LAYERS):
                outputs = [_keras_step(layer, inputs)]
            else:
                raise OnnxImportError(f"layer {layer.name!r} ({type(layer).__name__}) cannot receive ONNX weights.")
            for tensor, step in zip(node.output_tensors, outputs):
                steps[id(tensor)] = step
        return [steps[id(tensor)] for tensor in functional.outputs]

    return canonical_order(walk(model, [start])[0])


def _sums_a_group(layer):
    """True for the Reshape/AveragePooling2D layers that `torch_like.grouped_conv2d` puts after its kernel."""
    return isinstance(layer, GROUP_SUM_LAYERS) and any(layer.name.endswith(suffix)
                                                       for suffix in ("_split", "_sum", "_merge"))


def _keras_padding(layer):
    """(top, left, bottom, right) of the ZeroPadding2D feeding `layer`, or zeros."""
    source = layer._inbound_nodes[-1].input_tensors[0]._keras_history.operation
    if isinstance(source, layers.ZeroPadding2D):
        (top, bottom), (left, right) = source.padding
        return (top, left, bottom, right)
    return (0, 0, 0, 0)


def _keras_step(layer, inputs):
    where = f"layer {layer.name!r}"
    if isinstance(layer, layers.DepthwiseConv2D):
        channels, per_group_in = layer.kernel.shape[2], grouped_inputs(layer)
        return Step("conv", inputs, where, layer=layer, out=channels // per_group_in * layer.depth_multiplier,
                    per_group_in=per_group_in, kernel=tuple(layer.kernel_size), strides=tuple(layer.strides),
                    pads=_keras_padding(layer), groups=channels // per_group_in)
    if isinstance(layer, layers.Conv2D):
        return Step("conv", inputs, where, layer=layer, out=layer.filters, per_group_in=layer.kernel.shape[2],
                    kernel=tuple(layer.kernel_size), strides=tuple(layer.strides), pads=_keras_padding(layer),
                    groups=layer.groups)
    if isinstance(layer, layers.BatchNormalization):
        return Step("batchnorm", inputs, where, layer=layer, channels=layer.moving_mean.shape[0])
    if isinstance(layer, layers.PReLU):
        return Step("prelu", inputs, where, layer=layer, channels=layer.alpha.shape[-1])
    return Step("dense", inputs, where, layer=layer, width_in=layer.kernel.shape[0], units=layer.units)


# ---- matching and copying --------------------------------------------------------------------

MATCHED_DETAILS = {"conv": ("out", "per_group_in", "kernel", "strides", "pads", "groups"),
                   "batchnorm": ("channels",), "prelu": ("channels",), "dense": ("width_in", "units"), "add": ()}


def match_steps(keras_sequence, onnx_sequence):
    """[(keras step, onnx step or None for a BN folded into the conv before it)], or OnnxImportError at the first mismatch."""
    pairs, position = [], 0
    for index, ours in enumerate(keras_sequence):
        theirs = onnx_sequence[position] if position < len(onnx_sequence) else None
        previous = pairs[-1] if pairs else (None, None)
        folded = (ours.kind == "batchnorm" and previous[0] is not None and previous[0].kind == "conv"
                  and previous[1].details.get("bias") is not None and (theirs is None or theirs.kind != "batchnorm"
                                                                       or theirs.inputs[0] is not previous[1]))
        if folded:
            pairs.append((ours, None))
            continue
        if previous[0] is not None and previous[0].kind == "conv" and previous[1].details.get("bias") is not None \
                and ours.kind != "batchnorm":
            raise OnnxImportError(f"{previous[1].source} has a bias, but {previous[0].source} is not followed by a "
                                  "BatchNorm that could take it.")
        if theirs is None:
            raise OnnxImportError(f"the ONNX graph ends before {ours.source} ({ours.describe()}): "
                                  "it has fewer layers than this backbone.")
        expected = {key: ours.details[key] for key in MATCHED_DETAILS[ours.kind]}
        found = {key: theirs.details.get(key) for key in MATCHED_DETAILS[ours.kind]}
        if ours.kind != theirs.kind or expected != found:
            raise OnnxImportError(
                f"first mismatch at {ours.source} (step {index + 1}): expected {ours.kind} {expected}, the ONNX "
                f"graph has {f'{theirs.kind} {found}' if theirs.kind == ours.kind else theirs.describe()} at "
                f"{theirs.source}. The file is not this backbone (depth, widths or embedding size differ).")
        pairs.append((ours, theirs))
        position += 1
    if position != len(onnx_sequence):
        extra = onnx_sequence[position]
        raise OnnxImportError(f"the ONNX graph has more layers than this backbone, from {extra.source} "
                              f"({extra.describe()}) on.")
    return pairs


def _flatten_shape(layer):
    """(h, w, c) flattened just before Dense `layer` (through Dropout), or None."""
    source = layer._inbound_nodes[-1].input_tensors[0]._keras_history.operation
    while isinstance(source, layers.Dropout):
        source = source._inbound_nodes[-1].input_tensors[0]._keras_history.operation
    if isinstance(source, layers.Flatten):
        shape = tuple(source._inbound_nodes[-1].input_tensors[0].shape[1:])
        return shape if len(shape) == 3 else None
    return None


def channels_last_rows(weight, shape):
    """Dense weight (h·w·c in PyTorch's c, h, w order, units) → rows in Keras' h, w, c order."""
    height, width, channels = shape
    return weight.reshape(channels, height, width, -1).transpose(1, 2, 0, 3).reshape(height * width * channels, -1)


def depthwise_kernel(kernel, groups):
    """Grouped HWIO kernel (k, k, a, groups·b) → DepthwiseConv2D kernel (k, k, groups·a, b), K[.., g·a + j, m] = W[.., j, g·b + m].

    a = 1, b = 1 is a plain depthwise convolution; otherwise `torch_like.grouped_conv2d`'s layout.
    """
    height, width, per_group_in, out = kernel.shape
    per_group_out = out // groups
    return (kernel.reshape(height, width, per_group_in, groups, per_group_out).transpose(0, 1, 3, 2, 4)
            .reshape(height, width, groups * per_group_in, per_group_out))


def assign_weights(pairs, input_mean, input_scale):
    """Copy every matched ONNX step's weights into its Keras layer (see the module docstring)."""
    first_conv = True
    for index, (ours, theirs) in enumerate(pairs):
        layer = ours.details["layer"] if ours.kind != "add" else None
        if ours.kind == "conv":
            kernel = theirs.details["weight"].astype(np.float64).transpose(2, 3, 1, 0)  # OIHW → HWIO
            if isinstance(layer, layers.DepthwiseConv2D):
                kernel = depthwise_kernel(kernel, ours.details["groups"])
            if first_conv:
                kernel = kernel * _first_conv_factor(input_mean, input_scale, kernel.shape[2], theirs.source)
                first_conv = False
            layer.kernel.assign(kernel.astype(np.float32))
        elif ours.kind == "batchnorm":
            _assign_batchnorm(layer, theirs, pairs[index - 1] if index else (None, None))
        elif ours.kind == "prelu":
            layer.alpha.assign(theirs.details["slope"].reshape(1, 1, -1).astype(np.float32))
        elif ours.kind == "dense":
            kernel = theirs.details["weight"].astype(np.float64)
            shape = _flatten_shape(layer)
            if shape is not None and shape[0] * shape[1] > 1:
                kernel = channels_last_rows(kernel, shape)
            bias = theirs.details["bias"]
            following = pairs[index + 1] if index + 1 < len(pairs) else None
            if following and following[0].kind == "batchnorm" and has_fixed_scale(following[0].details["layer"]):
                gamma = following[1].details["gamma"].astype(np.float64)  # a fixed-scale BN's γ, moved here
                kernel = kernel * gamma
                bias = None if bias is None else bias * gamma
            layer.kernel.assign(kernel.astype(np.float32))
            if layer.use_bias:
                layer.bias.assign(np.zeros(layer.units, np.float32) if bias is None else bias.astype(np.float32))
            elif bias is not None and np.any(bias != 0):
                raise OnnxImportError(f"{theirs.source} has a bias but {ours.source} has none.")


def _first_conv_factor(input_mean, input_scale, channels, where):
    """Per-input-channel factor (C, 1) turning the graph's first-conv input (x − M)·S into ours (x − 127.5)/128."""
    mean = np.broadcast_to(np.asarray(input_mean, np.float64).reshape(-1), (channels,))
    scale = np.broadcast_to(np.asarray(input_scale, np.float64).reshape(-1), (channels,))
    if not np.allclose(mean, PIXEL_MEAN, rtol=0, atol=1e-3):
        raise OnnxImportError(f"the graph normalises its input with mean {mean.tolist()} before {where}; only "
                              f"{PIXEL_MEAN} (insightface's) can be folded into the first convolution.")
    return (OUR_PIXEL_SCALE * scale).reshape(channels, 1)


def _assign_batchnorm(layer, theirs, previous_pair):
    """A kept BN (theirs), or (theirs None) the identity plus the bias of the conv that the BN was folded into."""
    before = previous_pair[1]
    after_biased_conv = previous_pair[0] is not None and previous_pair[0].kind == "conv" \
        and before.details.get("bias") is not None
    epsilon = layer.epsilon
    if theirs is None:
        bias = before.details["bias"].astype(np.float64)
        gamma, beta = np.ones_like(bias), bias
        mean, variance = np.zeros_like(bias), np.full_like(bias, 1.0 - epsilon)
    else:
        gamma, beta, mean, variance = (theirs.details[key].astype(np.float64)
                                       for key in ("gamma", "beta", "mean", "variance"))
        variance = variance + theirs.details["epsilon"] - epsilon
        if after_biased_conv:
            mean = mean - before.details["bias"]  # a kept BN after a conv with bias: the bias shifts the mean
    fixed = has_fixed_scale(layer)
    if fixed and previous_pair[0] is not None and previous_pair[0].kind == "dense":
        mean = mean * gamma  # γ went into the dense layer before (assign_weights)
    elif fixed and not np.allclose(gamma, 1.0):
        raise OnnxImportError(f"layer {layer.name!r} has its scale fixed at 1, the graph's BN has γ ≠ 1.")
    elif not fixed:
        layer.gamma.assign(gamma.astype(np.float32))
    if layer.center:
        layer.beta.assign(beta.astype(np.float32))
    layer.moving_mean.assign(mean.astype(np.float32))
    layer.moving_variance.assign(variance.astype(np.float32))


def read_onnx(path):
    """The `onnx.ModelProto` in the file `path`, with errors that name the file."""
    if not os.path.isfile(str(path)):
        raise MissingFileError(f"ONNX file {path!r} does not exist.")
    try:
        import onnx
    except ImportError as error:
        raise OnnxImportError("importing .onnx files needs the `onnx` package: pip install 'face-recipes[export]'.") \
            from error
    try:
        return onnx.load(str(path))
    except Exception as error:  # noqa: BLE001  (protobuf raises several types for a bad file)
        raise OnnxImportError(f"{path!r} is not a readable ONNX file: {error}") from error


def load_onnx_weights(model, path, parsed=None):
    """Copy the weights of the ONNX file `path` into the Keras embedding model `model` (matched by structure).

    `parsed`: `onnx_steps` of the file, when the caller has them already.
    """
    sequence, input_mean, input_scale, _ = parsed or onnx_steps(read_onnx(path))
    try:
        pairs = match_steps(keras_steps(model), sequence)
        assign_weights(pairs, input_mean, input_scale)
    except OnnxImportError as error:
        raise OnnxImportError(f"{path!r} does not fit {model.name}: {error}") from None
    return model


def onnx_embedding_size(sequence):
    """Output width of an ONNX model from its `onnx_steps` sequence (its last dense layer's units)."""
    dense = [step for step in sequence if step.kind == "dense"]
    if not dense:
        raise OnnxImportError("the ONNX graph has no dense layer: not a face embedding model.")
    return int(dense[-1].details["units"])


def onnx_image_size(graph, default=112):
    """The ONNX model's input height (NCHW), or `default` where the graph leaves it open."""
    initialised = {tensor.name for tensor in graph.graph.initializer}
    image = next(value for value in graph.graph.input if value.name not in initialised)
    dims = image.type.tensor_type.shape.dim
    return int(dims[2].dim_value) if len(dims) == 4 and dims[2].dim_value > 0 else default


def import_onnx_model(path, backbone, image_size=None):
    """Our registered `backbone`'s embedding model (its own embedding block, dropout 0) with the weights of `path`.

    Input: RGB images (B, S, S, 3), float 0..255, S = `image_size` or the graph's; output: the
    embedding the ONNX model returns for the same images in insightface's convention (RGB, NCHW,
    (x − 127.5)/127.5), or on raw pixels for a graph that normalises its input itself.
    """
    from backbones.embedding import build_embedding_model

    graph = read_onnx(path)
    parsed = onnx_steps(graph)
    model = build_embedding_model(backbone, onnx_embedding_size(parsed[0]), dropout=0.0,
                                  image_size=image_size or onnx_image_size(graph))
    return load_onnx_weights(model, str(path), parsed)


def onnx_input(graph, images):
    """What the ONNX model `graph` takes for RGB `images` (B, H, W, 3) in 0..255: NCHW, normalised by
    insightface's (x − 127.5)/127.5 unless the graph normalises its input itself."""
    nchw = np.asarray(images, np.float32).transpose(0, 3, 1, 2)
    normalises_input = onnx_steps(graph)[3]
    return nchw if normalises_input else (nchw - PIXEL_MEAN) / INSIGHTFACE_PIXEL_SCALE
