"""Training-pipeline throughput next to the raw JPEG decode rate, on the same files and machine.

    python benchmarks/pipeline_throughput.py [--images=2000] [--batch_size=128] [--batches=60] [--repeats=3]

Writes `--images` 112x112 synthetic face JPEGs to a temporary folder, then prints images/s of:
raw `tf.io.decode_jpeg` in a Python loop over the encoded bytes (one core, eager), a tf.data
map of read+decode (parallel, batched), each with TensorFlow's default fast integer IDCT and
with the accurate one that `data.decode` uses (libjpeg's default, OpenCV's and PIL's), and
`data.pipeline.train_dataset` (flip, batch `--batch_size`, accurate IDCT), with the ratios, and
the CPU time per image of each (less sensitive to other load on a shared machine). The best of
`--repeats` timings is kept. Prints numbers only; nothing is asserted.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from data.folders import scan_identity_folder  # noqa: E402
from data.pipeline import train_dataset  # noqa: E402
from data.synthetic import render_identity  # noqa: E402

IMAGES_PER_IDENTITY = 20
ACCURATE = "INTEGER_ACCURATE"


def write_faces(root, count):
    """`count` 112x112 JPEGs (quality 90) of synthetic identities, 20 per folder, under `root`."""
    for identity in range((count + IMAGES_PER_IDENTITY - 1) // IMAGES_PER_IDENTITY):
        folder = os.path.join(root, f"id_{identity:05d}")
        os.makedirs(folder)
        number = min(IMAGES_PER_IDENTITY, count - identity * IMAGES_PER_IDENTITY)
        for index, image in enumerate(render_identity(identity, number)):
            with open(os.path.join(folder, f"{index:03d}.jpg"), "wb") as file:
                file.write(tf.io.encode_jpeg(image, quality=90).numpy())


def best_rate_and_cost(measure, repeats):
    """(highest images/s, lowest CPU µs per image) over `repeats` calls of `measure()` → (images, seconds, CPU s)."""
    rates, costs = [], []
    for _ in range(repeats):
        images, seconds, cpu = measure()
        rates.append(images / seconds)
        costs.append(1e6 * cpu / images)
    return max(rates), min(costs)


def raw_decode_loop(encoded, dct_method=""):
    """Decode every JPEG of `encoded` (bytes) eagerly, one after another → (images, seconds, CPU seconds).

    `dct_method`: "" (TensorFlow's default, the fast integer IDCT) or "INTEGER_ACCURATE"."""
    started, cpu = time.perf_counter(), time.process_time()
    for item in encoded:
        tf.io.decode_jpeg(item, dct_method=dct_method)
    return len(encoded), time.perf_counter() - started, time.process_time() - cpu


def timed_batches(dataset, batches, batch_size, warmup=5):
    """Take `batches` batches of `dataset` after `warmup` → (images, seconds, CPU seconds)."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size, time.perf_counter() - started, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        write_faces(root, args.images)
        folder = scan_identity_folder(root, progress=False)
        seconds = time.perf_counter() - started
        print(f"{len(folder)} JPEGs of {folder.num_classes} identities written in {seconds:.1f} s; "
              f"{os.cpu_count()} CPU cores")
        encoded = []
        for path in folder.paths:
            with open(path, "rb") as file:
                encoded.append(file.read())
        raw, mapped = {}, {}
        for method in ("", ACCURATE):
            raw[method] = best_rate_and_cost(lambda: raw_decode_loop(encoded, method), args.repeats)
            read_decode = tf.data.Dataset.from_tensor_slices(list(folder.paths)).repeat().map(
                lambda path: tf.io.decode_jpeg(tf.io.read_file(path), dct_method=method),
                num_parallel_calls=tf.data.AUTOTUNE).batch(args.batch_size).prefetch(tf.data.AUTOTUNE)
            mapped[method] = best_rate_and_cost(lambda: timed_batches(read_decode, args.batches, args.batch_size),
                                                args.repeats)
        pipeline = train_dataset(folder.paths, folder.labels, args.batch_size, augment=("flip",))
        trained = best_rate_and_cost(lambda: timed_batches(pipeline, args.batches, args.batch_size), args.repeats)
    rows = [("raw tf.io.decode_jpeg loop (eager, 1 thread), fast IDCT", raw[""]),
            ("raw tf.io.decode_jpeg loop (eager, 1 thread), accurate IDCT", raw[ACCURATE]),
            ("tf.data map read+decode_jpeg (parallel), fast IDCT", mapped[""]),
            ("tf.data map read+decode_jpeg (parallel), accurate IDCT", mapped[ACCURATE]),
            (f"train_dataset (flip, batch {args.batch_size}; accurate IDCT)", trained)]
    width = max(len(name) for name, _ in rows)
    print(f"{'':<{width}}  {'images/s':>9}  {'CPU µs/image':>12}")
    for name, (rate, cost) in rows:
        print(f"{name:<{width}}  {rate:9.0f}  {cost:12.1f}")
    print(f"accurate / fast IDCT, raw loop:      {raw[ACCURATE][0] / raw[''][0]:.2f} "
          f"(CPU per image {raw[ACCURATE][1] / raw[''][1]:.2f}x)")
    print(f"accurate / fast IDCT, tf.data map:   {mapped[ACCURATE][0] / mapped[''][0]:.2f} "
          f"(CPU per image {mapped[ACCURATE][1] / mapped[''][1]:.2f}x)")
    print(f"train_dataset / raw decode loop:     {trained[0] / raw[ACCURATE][0]:.2f}")
    print(f"train_dataset / tf.data read+decode: {trained[0] / mapped[ACCURATE][0]:.2f}")


if __name__ == "__main__":
    main()
