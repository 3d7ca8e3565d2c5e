"""The insightface layout of an ONNX export: a graph that insightface's `model_zoo.get_model` loads as `ArcFaceONNX`.

insightface's router (python-package/insightface/model_zoo/model_zoo.py, `ModelRouter.get_model`)
picks the model class from the first input's shape and the outputs: 5 or more outputs → SCRFD;
192×192 → Landmark; 96×96 → Attribute; two inputs at 128×128 → INSwapper; a square input with
H = W ≥ 112 and H % 16 == 0 → ArcFaceONNX; anything else → None. `ArcFaceONNX`
(arcface_onnx.py) uses input mean 0 and std 1 when one of the first 8 nodes is named `Sub…` or
`_minus…` and one `Mul…` or `_mul…` (MXNet conversions), else mean = std = 127.5; `get_feat(crops)`
feeds `cv2.dnn.blobFromImages(crops, 1/std, (W, H), (mean,)*3, swapRB=True)`, i.e. the BGR crops
as NCHW float32 RGB (x − 127.5)/127.5.

So the exported graph takes `data` (N, 3, S, S) in that convention and computes our embedding
model on the pixels x = data·127.5 + 127.5 (NHWC); S must be at least 112, a multiple of 16 and
not 192 (Landmark's size).
"""
import numpy as np
from keras import Input, Model, layers

from registry import UserError

INSIGHTFACE_MEAN = 127.5
INSIGHTFACE_STD = 127.5
INPUT_NAME = "data"
OTHER_MODEL_SIZES = {192: "Landmark", 96: "Attribute"}


class InsightfaceLayoutError(UserError):
    """A model that insightface's router would not load as a recognition model (`ArcFaceONNX`)."""


def check_insightface_size(size):
    """Refuse an input size S for which insightface's router would not return an `ArcFaceONNX`."""
    if size in OTHER_MODEL_SIZES or size < 112 or size % 16:
        routed = OTHER_MODEL_SIZES.get(size, "nothing (None)")
        raise InsightfaceLayoutError(
            f"--layout=insightface: the model's input is {size}×{size}, which insightface's model_zoo.get_model "
            f"routes to {routed}, not ArcFaceONNX; it needs a square input of at least 112, a multiple of 16, not "
            "192. Train at --image_size=112 (insightface's crop size) or export with the default layout.")


def insightface_model(embedder):
    """`embedder` (RGB NHWC 0..255 → embedding) behind insightface's input: `data` (B, 3, S, S), (x − 127.5)/127.5."""
    size = int(embedder.input_shape[1])
    check_insightface_size(size)
    blob = Input((3, size, size), name=INPUT_NAME)
    pixels = layers.Rescaling(INSIGHTFACE_STD, offset=INSIGHTFACE_MEAN, name="insightface_pixels")(
        layers.Permute((2, 3, 1), name="insightface_nhwc")(blob))
    return Model(blob, embedder(pixels), name=f"{embedder.name}_insightface")


def insightface_blob(images):
    """What `ArcFaceONNX.get_feat` feeds for the RGB images (B, S, S, 3) in 0..255: NCHW float32 (x − 127.5)/127.5."""
    nchw = np.asarray(images, np.float32).transpose(0, 3, 1, 2)
    return ((nchw - INSIGHTFACE_MEAN) / INSIGHTFACE_STD).astype(np.float32)


def check_insightface_routing(path):
    """The input facts of the ONNX file `path`, or InsightfaceLayoutError where insightface would not load it as an
    `ArcFaceONNX` taking (x − 127.5)/127.5 (the rules of the module docstring)."""
    import onnx

    graph = onnx.load(path).graph
    initialised = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initialised]
    dims = [dim.dim_value if dim.HasField("dim_value") else None for dim in inputs[0].type.tensor_type.shape.dim]
    names = [node.name for node in graph.node[:8]]
    mxnet_style = any(name.startswith(("Sub", "_minus")) for name in names) and \
        any(name.startswith(("Mul", "_mul")) for name in names)
    if len(inputs) != 1 or len(graph.output) != 1 or len(dims) != 4 or dims[1] != 3 or dims[2] != dims[3]:
        raise InsightfaceLayoutError(f"the export {path!r} has inputs {[value.name for value in inputs]} of shape "
                                     f"{dims} and {len(graph.output)} outputs, not one (N, 3, S, S) input and one "
                                     "output: insightface would not load it as ArcFaceONNX.")
    check_insightface_size(dims[2])
    if mxnet_style:
        raise InsightfaceLayoutError(f"the export {path!r} has nodes named Sub…/Mul… among its first 8 ({names}): "
                                     "insightface would feed it raw pixels.")
    return {"name": inputs[0].name, "shape": [None, 3, dims[2], dims[3]], "dtype": "float32", "layout": "NCHW",
            "channels": "RGB", "normalisation": "outside the model: (x - 127.5) / 127.5, as insightface's "
            "ArcFaceONNX.get_feat feeds BGR crops (cv2.dnn.blobFromImages, swapRB=True)"}
