"""Import the weights of an ONNX face model (insightface's model zoo, arcface_torch's `torch2onnx.py`, MXNet
conversions) into our Keras embedding model, matched by structure (`backbones.onnx_graph` reduces both to steps).

The two step sequences are compared one by one (kind, kernel size, widths, strides, padding,
groups); the first difference is refused with the Keras layer's name and the ONNX node (and,
where `backbones.onnx_variants` recognises the file, the options that fit it). What the copy
takes care of:

- PyTorch's exporter (`torch.onnx.export(..., do_constant_folding=True)`) folds a BatchNorm into
  the convolution before it (the Conv gets a bias, the BN node disappears): our BN then gets
  γ = 1, β = bias, mean 0, variance 1 − ε, i.e. the identity plus the bias (a convolution
  with neither bias nor BN after it gets the identity);
- BatchNorms kept in the graph (a block's pre-activation `bn1`, the output BNs, every BN of an
  MXNet conversion); a different epsilon (MXNet's 2e-5) is folded into the variance; a final BN
  with fixed scale (γ frozen at 1) takes the graph's γ through the dense layer before it;
- OIHW → HWIO kernels, depthwise (C, 1, k, k) → (k, k, C, 1), PReLU slopes per channel;
- a dense layer after a flatten of an (h, w, c) map: PyTorch flattens c·h·w, Keras h·w·c, so
  the rows are permuted;
- the input: the graph's first convolution sees (x − M)·S of the RGB pixels x
  (`OnnxGraph.input_mean`, `input_scale`); ours sees (x − 127.5)/128, so the first kernel is
  multiplied by 128·S; a mean other than 127.5 is refused.
"""
import numpy as np
from keras import layers

from backbones.onnx_graph import PIXEL_MEAN, OnnxImportError, Step, canonical_order
from backbones.onnx_variants import detect_variant
from backbones.torch_like import grouped_inputs, has_fixed_scale

OUR_PIXEL_SCALE = 128.0
PASS_THROUGH_LAYERS = (layers.InputLayer, layers.ZeroPadding2D, layers.Dropout, layers.Flatten, layers.Rescaling)
GROUP_SUM_LAYERS = (layers.Reshape, layers.AveragePooling2D)  # the sum of a `torch_like.grouped_conv2d`
WEIGHT_LAYERS = (layers.Conv2D, layers.DepthwiseConv2D, layers.BatchNormalization, layers.PReLU, layers.Dense)


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
    """[(keras step, onnx step or None for a BN folded into the conv before it)]; raises at the first mismatch."""
    pairs, position = [], 0
    for index, ours in enumerate(keras_sequence):
        theirs = onnx_sequence[position] if position < len(onnx_sequence) else None
        previous = pairs[-1] if pairs else (None, None)
        after_conv = previous[0] is not None and previous[0].kind == "conv"
        if ours.kind == "batchnorm" and after_conv and (
                theirs is None or theirs.kind != "batchnorm" or theirs.inputs[0] is not previous[1]):
            pairs.append((ours, None))  # folded into the convolution before (or never there)
            continue
        if after_conv and previous[1].details.get("bias") is not None and ours.kind != "batchnorm":
            raise OnnxImportError(f"{previous[1].source} has a bias, but {previous[0].source} is not followed by a "
                                  "BatchNorm that could take it.")
        if theirs is None:
            raise OnnxImportError(f"the ONNX graph ends where {ours.source} ({ours.describe()}) comes: "
                                  "it has fewer layers than this backbone.")
        expected = {key: ours.details[key] for key in MATCHED_DETAILS[ours.kind]}
        found = {key: theirs.details.get(key) for key in MATCHED_DETAILS[ours.kind]}
        if ours.kind != theirs.kind or expected != found:
            raise OnnxImportError(
                f"first mismatch at {ours.source} (step {index + 1}): this backbone has {ours.describe()} there, "
                f"the ONNX graph has {theirs.describe()} ({theirs.source})")
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
    """A kept BN (theirs), or (theirs None) the identity plus the bias (if any) of the conv the BN was folded into."""
    before = previous_pair[1]
    after_biased_conv = previous_pair[0] is not None and previous_pair[0].kind == "conv" \
        and before.details.get("bias") is not None
    epsilon = layer.epsilon
    if theirs is None:
        bias = before.details["bias"].astype(np.float64) if after_biased_conv else np.zeros(before.details["out"])
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


def load_onnx_weights(model, graph, backbone=None):
    """Copy the weights of `graph` (an `OnnxGraph`) into the Keras embedding model `model` (matched by structure).

    A mismatch names the first layer that differs and, when the file is a recognised variant of
    another backbone than `backbone`, the options that import it.
    """
    try:
        pairs = match_steps(keras_steps(model), graph.steps)
        assign_weights(pairs, graph.input_mean, graph.input_scale)
    except OnnxImportError as error:
        raise OnnxImportError(f"{graph.path!r} does not fit {model.name}: {str(error).rstrip('.')}"
                              f"{_variant_hint(graph, backbone)}.") from None
    return model


def _variant_hint(graph, backbone):
    """'; the file is: <variant>; import it with <flags>' where the detection recognises another backbone, else ''."""
    try:
        variant = detect_variant(graph)
    except OnnxImportError:
        return ""
    if variant.backbone == backbone:
        return ""
    return f"; the file is: {variant.description}; import it with {variant.flags()}"
