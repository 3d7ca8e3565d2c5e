"""`embed --flip=false` through an imported model equals insightface's `get_feat` through the original ONNX file,
on JPEG faces: same pixels (accurate IDCT), same network."""
import os

import numpy as np
import pytest
from PIL import Image

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from benchmarks.onnx_graphs import mobilefacenet_graph, mxnet_iresnet_graph  # noqa: E402
from data.synthetic import render_identity  # noqa: E402
from insightface_reference import ArcFaceOnnx, cosines, imread_bgr  # noqa: E402
from recipes.commands.embed import embed_data  # noqa: E402
from recipes.commands.import_model import import_model  # noqa: E402

MIN_COSINE = 0.99999


def write_jpeg_faces(folder, size, count=6):
    """`count` aligned synthetic face crops (size × size, camera-like noise) as JPEG files of one identity folder."""
    os.makedirs(folder / "person")
    faces = render_identity(17, count, size).astype(np.float64)
    noisy = faces + np.random.default_rng(1).normal(0, 5, faces.shape)
    for index, face in enumerate(np.clip(noisy, 0, 255).astype(np.uint8)):
        Image.fromarray(face).save(folder / "person" / f"{index}.jpg", quality=92)
    return str(folder)


@pytest.mark.parametrize("graph, size", [(lambda: mobilefacenet_graph(units=32, image_size=112, fold=True,
                                                                      embedding_block="pointwise_fc"), 112),
                                         (lambda: mxnet_iresnet_graph(units=32, image_size=32), 32)],
                         ids=["w600k_mbf_112", "mxnet_r18_sub_mul"])
@pytest.mark.slow
def test_embed_of_jpeg_faces_through_an_imported_model_equals_insightface_get_feat(tmp_path, graph, size):
    original = str(tmp_path / "original.onnx")
    onnx.save(graph(), original)
    imported = str(tmp_path / "imported.keras")
    import_model(original, out=imported)
    faces = write_jpeg_faces(tmp_path / "faces", size)
    result = embed_data(imported, faces, str(tmp_path / "embeddings.npy"), flip=False)
    with open(result["tsv"]) as file:
        paths = [line.split("\t")[0] for line in file.read().splitlines()[1:]]
    ours = np.load(result["out"])
    theirs = ArcFaceOnnx(original).get_feat([imread_bgr(path) for path in paths])
    assert ours.shape == theirs.shape == (6, 32)
    assert cosines(ours, theirs).min() >= MIN_COSINE
