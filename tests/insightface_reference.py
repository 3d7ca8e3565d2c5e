"""insightface's recognition-model loading, transcribed for tests (insightface and OpenCV are not dependencies).

From deepinsight/insightface `python-package/insightface/model_zoo/`:
- `model_zoo.py`, `ModelRouter.get_model`: the class insightface builds for an ONNX file, from
  its outputs and its first input's shape (`route`);
- `arcface_onnx.py`, `ArcFaceONNX`: input mean 0 / std 1 when one of the first 8 nodes is named
  `Sub…`/`_minus…` and one `Mul…`/`_mul…`, else 127.5 / 127.5; `input_size` = (W, H) of the
  input; `get_feat(imgs)` = session.run on `cv2.dnn.blobFromImages(imgs, 1/std, input_size,
  (mean,)*3, swapRB=True)` (`blob_from_images`: OpenCV's blob for images already at `input_size`,
  crop off: float32, BGR → RGB, minus mean, times the scale factor, NCHW).
Importable from any test (pytest puts this folder on `sys.path`).
"""
import io

import numpy as np
import onnx
import onnxruntime
from PIL import Image


def route(path):
    """The insightface model class name `model_zoo.get_model(path)` builds ('ArcFaceONNX', 'Landmark', ...) or None."""
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = inputs[0].shape
    if len(outputs) >= 5:
        return "SCRFD"
    if shape[2] == 192 and shape[3] == 192:
        return "Landmark"
    if shape[2] == 96 and shape[3] == 96:
        return "Attribute"
    if len(inputs) == 2 and shape[2] == 128 and shape[3] == 128:
        return "INSwapper"
    if shape[2] == shape[3] and shape[2] >= 112 and shape[2] % 16 == 0:
        return "ArcFaceONNX"
    return None


def blob_from_images(images, scale_factor, size, mean, swap_rb):
    """`cv2.dnn.blobFromImages(images, scale_factor, size, (mean,)*3, swapRB=swap_rb)` for uint8 (H, W, 3) images
    already (W, H) = `size`: (N, 3, H, W) float32."""
    blob = []
    for image in images:
        assert image.shape[1::-1] == tuple(size), "the reference does not resize"
        pixels = image.astype(np.float32)
        if swap_rb:
            pixels = pixels[:, :, ::-1]
        blob.append(((pixels - np.float32(mean)) * np.float32(scale_factor)).transpose(2, 0, 1))
    return np.stack(blob).astype(np.float32)


class ArcFaceOnnx:
    """insightface's `ArcFaceONNX` on CPU: `get_feat(bgr_images)` → raw embeddings (N, d)."""

    def __init__(self, path):
        nodes = onnx.load(path).graph.node[:8]
        find_sub = any(node.name.startswith("Sub") or node.name.startswith("_minus") for node in nodes)
        find_mul = any(node.name.startswith("Mul") or node.name.startswith("_mul") for node in nodes)
        self.input_mean, self.input_std = (0.0, 1.0) if find_sub and find_mul else (127.5, 127.5)
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_size = tuple(self.session.get_inputs()[0].shape[2:4][::-1])

    def get_feat(self, bgr_images):
        blob = blob_from_images(bgr_images, 1.0 / self.input_std, self.input_size, self.input_mean, swap_rb=True)
        return self.session.run(None, {self.input_name: blob})[0]


def imread_bgr(path):
    """`cv2.imread(path)`: BGR uint8; JPEG through libjpeg's default accurate IDCT (as PIL decodes it)."""
    with open(path, "rb") as file:
        return np.asarray(Image.open(io.BytesIO(file.read())).convert("RGB"))[:, :, ::-1]


def cosines(first, second):
    """Row-wise cosine similarity of (N, d) arrays, in float64."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    return np.sum(first * second, axis=1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))
