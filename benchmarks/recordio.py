"""RecordIO reading: `train.rec` vs the same images as an identity folder, and a 1M-record index.

    python -m benchmarks.recordio [--images=1536] [--batch_size=128] [--batches=12] [--repeats=2] [--records=1000000]

Row 1 (throughput): the synthetic identity folder's JPEGs are also written as an insightface
`train.rec`; `data.pipeline.train_dataset` (flip) reads each, measured in turns, best of
`--repeats`; goal rec >= 0.8x folder. Row 2 (scale): a generated `--records`-record
`.rec`/`.idx` (one small JPEG repeated, labels 0..records/10): first index build, cached
index load (in a fresh process: seconds and extra resident MiB), and time to the first
batch from a fresh process (index load + pipeline build + one batch). Prints numbers only.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from data.recordio import IDX_NAME, MAGIC_BYTES, REC_NAME, encode_record, pack_record  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RSS_PROBE = """
import json, os, sys, time
sys.path.insert(0, {root!r})
def rss():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
import numpy, tensorflow
from data.record_folder import scan_record_folder
from data.pipeline import train_dataset
before, started = rss(), time.perf_counter()
folder = scan_record_folder({folder!r}, cache={cache!r})
loaded, extra = time.perf_counter() - started, rss() - before
dataset = train_dataset(folder.paths, folder.labels, {batch_size}, augment=("flip",))
next(iter(dataset))
print(json.dumps({{"load_seconds": loaded, "extra_rss_bytes": extra, "first_batch_seconds":
                  time.perf_counter() - started, "images": len(folder), "classes": folder.num_classes}}))
"""


def write_rec_copy(folder, out):
    """Write the images of the `IdentityFolder` `folder` as an insightface RecordIO folder at `out`."""
    from data.recordio import write_insightface_folder

    images = []
    for path in folder.paths:
        with open(path, "rb") as file:
            images.append(file.read())
    write_insightface_folder(out, images, folder.labels)


def run_rec_vs_folder(train_dir, batch_size=128, batches=12, repeats=2, quick=False):
    """{folder, rec: (images/s, CPU µs/image), ratio, images}: train_dataset on a folder vs the same .rec."""
    from benchmarks.pipeline_throughput import best_rate_and_cost, timed_batches
    from data.folders import scan_identity_folder
    from data.pipeline import train_dataset
    from data.record_folder import scan_record_folder

    if quick:
        batches, repeats = 3, 1
    folder = scan_identity_folder(train_dir, progress=False)
    with tempfile.TemporaryDirectory() as temporary:
        write_rec_copy(folder, temporary)
        records = scan_record_folder(temporary, cache=False)
        pipelines = {"folder": train_dataset(folder.paths, folder.labels, batch_size, augment=("flip",)),
                     "rec": train_dataset(records.paths, records.labels, batch_size, augment=("flip",))}
        results = {name: [] for name in pipelines}
        for _ in range(repeats):
            for name, pipeline in pipelines.items():
                results[name].append(best_rate_and_cost(lambda: timed_batches(pipeline, batches, batch_size), 1))
    best = {name: (max(rate for rate, _ in rows), min(cost for _, cost in rows)) for name, rows in results.items()}
    return {**best, "ratio": best["rec"][0] / best["folder"][0], "images": len(folder), "batch_size": batch_size}


def write_generated_rec(folder, records, classes):
    """A `records`-record im2rec-style `.rec`/`.idx` of one tiny JPEG with labels `arange(records) % classes`, fast.

    Every record has the same length, so the file is one tiled template with the label
    words patched (written by our dmlc-exact `encode_record`; the image holds no magic).
    """
    import tensorflow as tf

    image = tf.io.encode_jpeg(np.full((8, 8, 3), 128, np.uint8)).numpy()
    template = np.frombuffer(encode_record(pack_record(0.0, image)), np.uint8)
    assert MAGIC_BYTES not in bytes(template[8:]) and len(template) % 4 == 0
    os.makedirs(folder, exist_ok=True)
    labels = (np.arange(records) % classes).astype("<f4")
    with open(os.path.join(folder, REC_NAME), "wb") as file:
        for start in range(0, records, 1 << 16):
            count = min(1 << 16, records - start)
            block = np.tile(template, (count, 1))
            block[:, 12:16] = labels[start:start + count].view(np.uint8).reshape(-1, 4)
            file.write(block.tobytes())
    keys = np.arange(1, records + 1)
    offsets = np.arange(records, dtype=np.int64) * len(template)
    with open(os.path.join(folder, IDX_NAME), "w") as file:
        file.write("".join(f"{key}\t{offset}\n" for key, offset in zip(keys.tolist(), offsets.tolist())))


def run_index_scale(records=1_000_000, batch_size=128):
    """{records, write_seconds, build_seconds, load_seconds, extra_rss_bytes, first_batch_seconds, rec_bytes}."""
    from data.recordio import read_index

    with tempfile.TemporaryDirectory() as temporary:
        folder, cache = os.path.join(temporary, "data"), os.path.join(temporary, "cache")
        started = time.perf_counter()
        write_generated_rec(folder, records, max(1, records // 10))
        written = time.perf_counter() - started
        started = time.perf_counter()
        read_index(folder, cache=cache)
        built = time.perf_counter() - started
        probe = RSS_PROBE.format(root=ROOT, folder=folder, cache=cache, batch_size=batch_size)
        output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).stdout
        measured = json.loads(output.strip().splitlines()[-1])
        size = os.path.getsize(os.path.join(folder, REC_NAME))
    return {"records": records, "write_seconds": written, "build_seconds": built, "rec_bytes": size, **measured}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1536, help="synthetic JPEGs for the throughput row")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    from data.synthetic import make_synthetic_dataset

    with tempfile.TemporaryDirectory() as temporary:
        identities = max(1, args.images // 24)
        synthetic = make_synthetic_dataset(temporary, train_identities=identities, images_per_identity=24,
                                           eval_identities=2, eval_images_per_identity=2, eval_pairs=2, seed=0)
        row = run_rec_vs_folder(synthetic.train_dir, args.batch_size, args.batches, args.repeats)
    print(f"{row['images']} images, batch {row['batch_size']}: folder {row['folder'][0]:,.0f} images/s "
          f"({row['folder'][1]:,.0f} CPU µs/image), train.rec {row['rec'][0]:,.0f} images/s "
          f"({row['rec'][1]:,.0f} CPU µs/image); rec/folder {row['ratio']:.2f}x (goal >= 0.8x)")
    scale = run_index_scale(args.records, args.batch_size)
    print(f"{scale['records']:,} records ({scale['rec_bytes'] / 2**20:,.0f} MiB .rec, written in "
          f"{scale['write_seconds']:.1f} s): first index build {scale['build_seconds']:.2f} s; cached index load "
          f"{scale['load_seconds']:.2f} s, +{scale['extra_rss_bytes'] / 2**20:.0f} MiB resident; first batch after "
          f"{scale['first_batch_seconds']:.2f} s (goal: load < 2 s and < 100 MiB)")


if __name__ == "__main__":
    main()
