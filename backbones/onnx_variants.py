"""Which registered backbone, with which options, an ONNX face model is: read from its steps (`backbones.onnx_graph`).

The detection reads only what tells the variants apart; `backbones.onnx_import` then checks
every layer. What tells them apart (insightface's `recognition/arcface_torch/backbones/` over its
history, the model-zoo packs, MXNet's `fresnet.py` as converted by `deploy/mxnet_to_ort.py`):

- the first convolution: 3→64, 3×3, stride 1 is an IResNet's `conv1` (arcface_torch and
  MXNet's `conv0` alike); 3→64·scale, 3×3, stride 2 is a MobileFaceNet's first ConvBlock;
- the residual additions per resolution (the count of stride-2 convolutions before them): an
  IResNet's blocks per stage (iresnet18 … iresnet200); a MobileFaceNet's `blocks` (at the first
  resolution none means arcface_torch's grouped 3×3 ConvBlock, blocks[0] = 1);
- after the last addition, the embedding block, compared by its steps' kinds (BatchNorms left
  out, since the exporter may have folded them): an IResNet's BN → FC → BN; a MobileFaceNet's
  `conv_sep` (1×1 conv → 512, PReLU) then GDC (depthwise conv, FC) or the released
  w600k_mbf's pointwise block (1×1 conv → 64, PReLU, FC).
"""
import math

from backbones.iresnet import BLOCKS_PER_STAGE
from backbones.mobilefacenet import POINTWISE_CHANNELS
from backbones.onnx_graph import OnnxImportError
from registry import BACKBONES

CONV_SEP = ("conv 1x1", "prelu")
MOBILEFACENET_TAILS = {"gdc": CONV_SEP + ("conv depthwise", "dense"),
                       "pointwise_fc": CONV_SEP + ("conv 1x1", "prelu", "dense")}
IRESNET_TAIL = ("dense",)
TOKEN_WORDS = {"conv 1x1": "a 1×1 convolution", "conv depthwise": "a depthwise convolution over the whole map",
               "conv": "a convolution", "prelu": "a PReLU", "dense": "a fully connected layer", "add": "an addition"}
BLOCK_WORDS = {"gdc": "arcface_torch's GDC block (depthwise conv over the whole map, FC, BN)",
               "pointwise_fc": "the released w600k_mbf's block (1×1 conv 512→64, PReLU, flatten, FC with bias, BN)"}


class Variant:
    """A detected backbone: registry `backbone`, its detected `settings` (options), `description`, `image_size`."""

    def __init__(self, backbone, settings, description, image_size):
        self.backbone, self.settings, self.description, self.image_size = backbone, settings, description, image_size
        defaults = BACKBONES.options(backbone, skip=("input_shape", "weights"))
        self.options = {key: value for key, value in settings.items() if not _same(value, defaults[key])}

    def flags(self):
        """The command-line options that build this variant."""
        def shown(value):  # no spaces: one shell word
            return f"[{','.join(map(str, value))}]" if isinstance(value, (list, tuple)) else value

        return " ".join([f"--backbone={self.backbone}"] + [f"--backbone_args.{key}={shown(value)}"
                                                          for key, value in self.options.items()])


def token(step):
    """The kind of `step` as the detection compares it: 'conv 1x1', 'conv depthwise', 'conv', 'prelu', 'dense', ..."""
    if step.kind != "conv":
        return step.kind
    details = step.details
    if details["kernel"] == (1, 1) and details["groups"] == 1:
        return "conv 1x1"
    channels_in = details["per_group_in"] * details["groups"]
    return "conv depthwise" if details["groups"] == channels_in == details["out"] and not any(details["pads"]) \
        else "conv"


def resolutions(steps):
    """{id(step): stride-2 convolutions on the way from the input to `step`}."""
    found = {}
    for step in steps:  # canonical order: inputs first
        before = max((found.get(id(parent), 0) for parent in step.inputs), default=0)
        found[id(step)] = before + (step.kind == "conv" and max(step.details["strides"]) > 1)
    return found


def adds_per_resolution(steps):
    """{resolution: residual additions at it}."""
    found = resolutions(steps)
    counts = {}
    for step in steps:
        if step.kind == "add":
            counts[found[id(step)]] = counts.get(found[id(step)], 0) + 1
    return counts


def detect_variant(graph):
    """The `Variant` of the `OnnxGraph` `graph`; OnnxImportError naming the first step that fits no variant."""
    steps = graph.steps
    first = steps[0] if steps else None
    if first is None or first.kind != "conv" or first.details["per_group_in"] * first.details["groups"] != 3:
        found = first.describe() if first else "nothing"
        raise OnnxImportError(f"{graph.path!r}: its first layer is {found}, not a convolution of the 3 colour "
                              "channels; not an IResNet or MobileFaceNet.")
    last_add = max((index for index, step in enumerate(steps) if step.kind == "add"), default=None)
    if last_add is None:
        raise OnnxImportError(f"{graph.path!r} has no residual additions: not an IResNet or MobileFaceNet.")
    kernel, stride, width = first.details["kernel"], first.details["strides"], first.details["out"]
    if kernel == (3, 3) and stride == (1, 1) and width == 64:
        return _iresnet(graph, steps[last_add + 1:])
    if kernel == (3, 3) and stride == (2, 2) and width % 64 == 0:
        return _mobilefacenet(graph, steps[last_add + 1:])
    raise OnnxImportError(
        f"{graph.path!r}: its first layer is {first.describe()} ({first.source}), neither an IResNet's (3×3 "
        "convolution 3→64, stride 1) nor a MobileFaceNet's (3×3 convolution 3→64·scale, stride 2).")


def _iresnet(graph, tail):
    counts = adds_per_resolution(graph.steps)
    blocks = tuple(counts.get(resolution, 0) for resolution in range(1, 5))
    if sorted(counts) != [1, 2, 3, 4]:
        raise OnnxImportError(f"{graph.path!r}: an IResNet stem, but residual blocks at {len(counts)} resolutions "
                              f"{sorted(counts)}, where an IResNet has 4 stages.")
    names = [name for name, registered in BLOCKS_PER_STAGE.items() if registered == blocks]
    if not names:
        known = ", ".join(f"{name} {registered}" for name, registered in BLOCKS_PER_STAGE.items())
        raise OnnxImportError(f"{graph.path!r}: an IResNet with {blocks} blocks per stage, which no registered IResNet "
                              f"has ({known}).")
    _check_tail(graph, tail, {"IResNet": IRESNET_TAIL}, "IResNet")
    depth = names[0].removeprefix("iresnet")
    description = f"IResNet-{depth} (blocks per stage {blocks}), " + _convention(graph)
    return Variant(names[0], {}, description, _image_size(tail, 512))


def _mobilefacenet(graph, tail):
    scale = graph.steps[0].details["out"] // 64
    counts = adds_per_resolution(graph.steps)
    if not set(counts) <= {1, 2, 3, 4}:
        raise OnnxImportError(f"{graph.path!r}: a MobileFaceNet stem, but residual blocks at resolutions "
                              f"{sorted(counts)}, where a MobileFaceNet has them at 1 to 4.")
    blocks = (counts.get(1, 0) or 1,) + tuple(counts.get(resolution, 0) for resolution in (2, 3, 4))
    embedding_block = _check_tail(graph, tail, MOBILEFACENET_TAILS, "MobileFaceNet")
    settings = {"scale": scale, "blocks": blocks, "embedding_block": embedding_block}
    description = (f"MobileFaceNet (scale {scale}: width {64 * scale}; blocks {blocks}) with "
                   f"{BLOCK_WORDS[embedding_block]}, " + _convention(graph))
    channels = POINTWISE_CHANNELS if embedding_block == "pointwise_fc" else 512
    return Variant("mobilefacenet", settings, description, _image_size(tail, channels))


def _check_tail(graph, tail, expected_tails, family):
    """The name of the expected tail that `tail`'s step kinds (BNs left out) equal, or OnnxImportError at the
    first step where the closest one differs."""
    steps = [step for step in tail if step.kind != "batchnorm"]
    tokens = tuple(token(step) for step in steps)
    for name, expected in expected_tails.items():
        if tokens == expected:
            return name

    def common(expected):
        return next((index for index, (ours, theirs) in enumerate(zip(expected, tokens)) if ours != theirs),
                    min(len(expected), len(tokens)))

    name, expected = max(expected_tails.items(), key=lambda item: common(item[1]))
    index = common(expected)
    block = f"a {family} with {BLOCK_WORDS[name]}" if name in BLOCK_WORDS else \
        f"an {family}'s embedding block (BN, flatten, FC, BN)"
    if index == len(expected):
        extra = steps[index]
        raise OnnxImportError(f"{graph.path!r}: after its last fully connected layer it has {extra.describe()} "
                              f"({extra.source}); {block} ends there.")
    if index == len(tokens):
        raise OnnxImportError(f"{graph.path!r}: its graph ends where {block} has {TOKEN_WORDS[expected[index]]} next.")
    found = steps[index]
    if expected[index] == "dense" and tokens[index] == "conv 1x1":
        raise OnnxImportError(
            f"{graph.path!r}: its last projection is a 1×1 convolution, not a fully connected layer; {found.source}, "
            f"{found.describe()}, stands where {block} has the fully connected layer.")
    raise OnnxImportError(f"{graph.path!r}: after its last residual block it has {found.describe()} ({found.source}) "
                          f"where {block} has {TOKEN_WORDS[expected[index]]}.")


def _image_size(tail, channels):
    """The input size the embedding block implies: 16 × the side of the flattened map (or the GDC kernel)."""
    dense = next(step for step in tail if step.kind == "dense")
    side = math.isqrt(dense.details["width_in"] // channels)
    depthwise = [step for step in tail if token(step) == "conv depthwise"]
    if depthwise:
        side = depthwise[-1].details["kernel"][0]
    return 16 * side


def _convention(graph):
    """How the graph takes its input and holds its BatchNorms, in words."""
    batchnorms = sum(step.kind == "batchnorm" for step in graph.steps)
    convs = sum(step.kind == "conv" for step in graph.steps)
    held = "BatchNorms kept" if batchnorms >= convs else "BatchNorms folded into the convolutions"
    if graph.normalises_input:
        return f"normalising raw pixels itself (Sub/Mul in the graph, as MXNet-converted models do), {held}"
    return f"taking insightface's (x − 127.5)/127.5 input, {held}"


def _same(first, second):
    """Option values equal, lists and tuples alike."""
    def normal(value):
        return tuple(value) if isinstance(value, (list, tuple)) else value

    return normal(first) == normal(second)


def onnx_backbone_args(graph, backbone, backbone_args=None):
    """`backbone_args` completed with the options of the variant `graph` is, when that is a `backbone`.

    The file decides: an option given with another value than the file's is refused
    (OnnxImportError). A file of another backbone, or one the detection does not recognise, gets
    `backbone_args` unchanged: the layer-by-layer match then names the first layer that differs.
    """
    backbone_args = dict(backbone_args or {})
    try:
        variant = detect_variant(graph)
    except OnnxImportError:
        return backbone_args
    if backbone not in BACKBONES or variant.backbone != BACKBONES.canonical(backbone):
        return backbone_args
    for key, value in variant.settings.items():
        if key in backbone_args and not _same(backbone_args[key], value):
            shown = list(value) if isinstance(value, tuple) else value
            raise OnnxImportError(f"--backbone_args.{key}={backbone_args[key]!r}, but {graph.path!r} is a "
                                  f"{variant.description}: leave the option out or set it to {shown!r}.")
    return {**backbone_args, **variant.options}
