"""`python -m benchmarks.export_latency [--backbone=mobilenetv2]`: latency and throughput of exported models.

One embedding model (random weights: speed does not depend on training) is exported with
`recipes.commands.export.export_model` to SavedModel, ONNX, TFLite float32 and TFLite float16 (each
parity-checked), then run on this CPU by each format's runtime next to Keras:

- single image: median wall time of `--single` calls on one 112x112 image (batch 1);
- batch 64: images/s of the median of `--batches` calls on 64 images.

All runtimes are timed in turns within each round (see `interleaved_medians`), so a change of
machine load hits every one alike.

Keras is measured two ways: `model.predict` (what the issue compares with; it builds a
dataset per call) and `model(images, training=False)` inside a `tf.function`. Every runtime
gets all CPU cores. Prints a markdown table.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXPORTS = (("SavedModel", "saved_model", "float32", "saved_model"), ("ONNX Runtime", "onnx", "float32", "m.onnx"),
           ("TFLite float32", "tflite", "float32", "m.tflite"), ("TFLite float16", "tflite", "float16", "m16.tflite"))


def interleaved_medians(runners, images, calls):
    """{name: median seconds of `runner(images)`} over `calls` rounds; each round calls every runner once, in
    turns (order reversed every round), after one warm-up call each, so a change of machine load hits all alike."""
    times = {name: [] for name in runners}
    for runner in runners.values():
        runner(images)
    for round_number in range(calls):
        order = list(runners) if round_number % 2 == 0 else list(runners)[::-1]
        for name in order:
            started = time.perf_counter()
            runners[name](images)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def run_export_latency(backbone="mobilenetv2", embedding_size=512, image_size=112, batch_size=64, single_calls=20,
                       batch_calls=5, progress=print):
    """Rows (name, single-image ms, batch images/s, model size MB) for Keras and each exported format."""
    import numpy as np
    import tensorflow as tf

    import backbones
    from recipes.commands.export import export_model
    from recipes.commands.runtimes import OnnxRuntime, SavedModelRuntime, TfliteRuntime

    threads = os.cpu_count()
    model = backbones.build_embedding_model(backbone, embedding_size, image_size=image_size)
    generator = np.random.default_rng(0)
    batch = generator.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype(np.float32)
    compiled = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
    runners = {"Keras predict": lambda images: model.predict(images, batch_size=batch_size, verbose=0),
               "Keras call (tf.function)": lambda images: compiled(images).numpy()}
    sizes = {}
    runtimes = {"saved_model": SavedModelRuntime, "onnx": lambda path: OnnxRuntime(path, threads),
                "tflite": lambda path: TfliteRuntime(path, threads)}
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "embedding.keras")
        model.save(source)
        for name, format_name, precision, file_name in EXPORTS:
            path = os.path.join(folder, file_name)
            started = time.perf_counter()
            result = export_model(source, format_name, path, precision=precision)
            progress(f"{name}: exported and parity-checked in {time.perf_counter() - started:.1f} s "
                     f"(max relative error {result['parity']['max_relative_error']:.1e}, "
                     f"min cosine {result['parity']['min_cosine']:.6f})")
            runners[name], sizes[name] = runtimes[format_name](path), _megabytes(path)
        progress(f"timing {single_calls} single-image rounds and {batch_calls} batch rounds")
        latency = interleaved_medians(runners, batch[:1], single_calls)
        batch_time = interleaved_medians(runners, batch, batch_calls)
    return [(name, 1000 * latency[name], batch_size / batch_time[name], sizes.get(name)) for name in runners]


def _megabytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path) / 1e6
    return sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(path) for name in names) / 1e6


def format_table(rows, backbone, batch_size):
    """The rows as a markdown table."""
    lines = [f"| {backbone}, 112x112, CPU | 1 image (ms, median) | batch {batch_size} (images/s) | file (MB) |",
             "|---|---:|---:|---:|"]
    for name, latency, rate, size in rows:
        lines.append(f"| {name} | {latency:.1f} | {rate:.0f} | {'' if size is None else f'{size:.1f}'} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.export_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--embedding_size", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--single", type=int, default=20, help="single-image calls timed")
    parser.add_argument("--batches", type=int, default=5, help="batch calls timed")
    args = parser.parse_args(argv)
    rows = run_export_latency(args.backbone, args.embedding_size, batch_size=args.batch_size, single_calls=args.single,
                              batch_calls=args.batches)
    print(format_table(rows, args.backbone, args.batch_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
