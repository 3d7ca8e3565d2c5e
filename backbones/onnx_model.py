"""An ONNX face model as our registered backbone's embedding model: detect the variant, build it, copy the weights."""
from backbones.embedding import build_embedding_model
from backbones.onnx_graph import OnnxImportError, parse_onnx
from backbones.onnx_variants import detect_variant

DEFAULT_IMAGE_SIZE = 112


def import_onnx_model(path, backbone=None, image_size=None, backbone_args=None, graph=None):
    """Our registered `backbone`'s embedding model (its own embedding block, dropout 0) with the weights of `path`.

    `backbone` None: the one the file is (`backbones.onnx_variants.detect_variant`), else refused
    naming the first layer that fits no registered variant. `backbone_args`: completed by the
    file's variant. `graph`: the file's `OnnxGraph`, when the caller has parsed it.
    Input: RGB images (B, S, S, 3), float 0..255, S = `image_size`, else the graph's input size,
    else the size its embedding block implies; output: the embedding the ONNX model returns for
    the same images in insightface's convention (RGB, NCHW, (x − 127.5)/127.5), or on raw pixels
    for a graph that normalises its input itself.
    """
    graph = graph or parse_onnx(path)
    if backbone is None:
        backbone = detect_variant(graph).backbone
    size = image_size or graph.image_size or _implied_image_size(graph)
    return build_embedding_model(backbone, graph.embedding_size, dropout=0.0, image_size=size, backbone_weights=path,
                                 backbone_args=backbone_args, onnx_graph=graph)


def _implied_image_size(graph):
    """The input size the graph's embedding block implies (a graph with an open input size), else 112."""
    try:
        return detect_variant(graph).image_size
    except OnnxImportError:
        return DEFAULT_IMAGE_SIZE
