"""Seconds to import an arcface_torch-style ONNX model (BNs folded, as `torch2onnx.py` writes it) into our backbone.

The ONNX file is written by `benchmarks.onnx_graphs` (random weights, 112×112, 512-d) into a
temporary folder; the time covers reading the file, building the Keras model, matching the
graphs and copying the weights (`backbones.onnx_model.import_onnx_model`).

    python -m benchmarks.onnx_import_time iresnet100
"""
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BLOCKS = {"iresnet18": (2, 2, 2, 2), "iresnet50": (3, 4, 14, 3), "iresnet100": (3, 13, 30, 3)}


def measure(backbone):
    """(seconds to import, file size in bytes, weights) for `backbone`."""
    import onnx

    from backbones.onnx_model import import_onnx_model
    from benchmarks.onnx_graphs import iresnet_graph, mobilefacenet_graph

    if backbone == "mobilefacenet":
        graph = mobilefacenet_graph(units=512, image_size=112, fold=True)
    else:
        graph = iresnet_graph(BLOCKS[backbone], units=512, image_size=112, fold=True)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"{backbone}.onnx")
        onnx.save(graph, path)
        del graph
        started = time.perf_counter()
        model = import_onnx_model(path, backbone)
        return time.perf_counter() - started, os.path.getsize(path), model.count_params()


def main(argv=None):
    for backbone in (argv if argv is not None else sys.argv[1:]) or ["iresnet100"]:
        seconds, size, weights = measure(backbone)
        print(f"{backbone}: imported a {size / 2**20:.0f} MiB ONNX file ({weights:,} weights) in {seconds:.1f} s",
              flush=True)


if __name__ == "__main__":
    main()
