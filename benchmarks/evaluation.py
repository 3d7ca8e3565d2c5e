"""`.bin` verification time (ours vs one plain `predict` pass vs the spec's loop) and data-pipeline throughput.

Evaluation: one embedding model, one synthetic `.bin` tiled to `image_count` images, all
decoded to uint8 in memory first (decoding happens once when a `VerificationCallback` is
built, so it is not part of the per-epoch cost). Three ways, same model and weights:

- ours: `evaluate_bins(flip_pair_function(model), ...)`, i.e. every image and its
  horizontal flip embedded in compiled batches, then the full 10-fold metrics;
- plain predict: one `model.predict` over the 2N images (images, then their flips), the
  floor any evaluation with flip has to pay;
- the spec's `epoch_eval_callback.on_epoch_end`: a Python loop over a batched
  `tf.data.Dataset` calling `model.predict(batch)` per batch, `embs.extend(...)`, sklearn
  `normalize`, and its best-threshold search. Fed the same 2N images (the spec does not
  flip; giving it the flips too makes it do the same work as ours) and with `verbose=0`
  (the spec prints a progress bar per call, which would only slow it further).

Each is timed `repeats` times, in turns (order reversed every repeat), after a warm-up
call; the fastest wall time counts, and the process's CPU time is recorded beside it.

The data-pipeline measurement (`run_pipeline`) is here too: images/s of the training
pipeline next to raw JPEG decoding of the same files.
"""
import time

import numpy as np
import tensorflow as tf

import backbones
from evaluation.verification import evaluate_bins, flip_pair_function
from data.bins import load_bin_images
from data.folders import scan_identity_folder
from data.pipeline import train_dataset

EVAL_BATCH_SIZE = 128


def tiled_bin(bin_path, image_count):
    """(uint8 images (image_count, S, S, 3), issame (image_count / 2,)): the `.bin`'s pairs repeated in order."""
    images, issame = load_bin_images(bin_path)
    pairs = image_count // 2
    repeats = -(-pairs // len(issame))
    pair_index = np.tile(np.arange(len(issame)), repeats)[:pairs]
    image_index = np.stack([2 * pair_index, 2 * pair_index + 1], axis=1).reshape(-1)
    return images[image_index], issame[pair_index]


def spec_loop_evaluation(model, images, batch_size=EVAL_BATCH_SIZE, issame=None):
    """The spec's on_epoch_end: predict per batch in a Python loop, then its best-threshold accuracy.

    `images`: uint8 (2P, S, S, 3); returns the spec's max accuracy (whole-set best threshold).
    """
    from sklearn.preprocessing import normalize

    dataset = tf.data.Dataset.from_tensor_slices(images).map(lambda image: tf.cast(image, tf.float32)).batch(batch_size)
    embs = []
    for img_batch in dataset:
        emb = model.predict(img_batch, verbose=0)
        embs.extend(emb)
    embs = np.array(embs)
    if np.isnan(embs).sum() != 0:
        return None
    embs = normalize(embs)
    dists = (embs[::2] * embs[1::2]).sum(1)
    if issame is None:
        issame = np.arange(len(dists)) % 2 == 0
    same = np.sort(dists[issame[:dists.shape[0]]])
    different = np.sort(dists[np.logical_not(issame[:dists.shape[0]])])
    max_accuracy = 0
    for value in reversed(different[-300:]):
        accuracy = ((same > value).sum() + (different <= value).sum()) / dists.shape[0]
        max_accuracy = max(max_accuracy, accuracy)
    return max_accuracy


def _timed(function):
    """(wall seconds, CPU seconds of this process) of calling `function()`."""
    started, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - started, time.process_time() - cpu


def run_evaluation(bin_path, backbone="tiny", image_count=12000, batch_size=EVAL_BATCH_SIZE, repeats=2, quick=False,
                   progress=print):
    """{backbone, images, seconds: {ours, predict, spec_loop}, ratios} for a `.bin` of `image_count` images."""
    if quick:
        image_count, repeats = min(image_count, 1200), 1
    images, issame = tiled_bin(bin_path, image_count)
    both = np.concatenate([images, images[:, :, ::-1]])
    embedder = backbones.build_embedding_model(backbone, 512)
    embed = flip_pair_function(embedder)
    spec_issame = np.concatenate([issame, issame])
    ways = {
        "ours": lambda count: evaluate_bins(embed, {"bench": (images[:count], issame[:count // 2])}, batch_size,
                                            progress=False),
        "predict": lambda count: embedder.predict(
            np.concatenate([images[:count], images[:count, :, ::-1]]) if count < len(images) else both,
            batch_size=2 * batch_size, verbose=0),
        "spec_loop": lambda count: spec_loop_evaluation(
            embedder, np.concatenate([images[:count], images[:count, :, ::-1]]) if count < len(images) else both,
            batch_size, spec_issame),
    }
    for way in ways.values():
        way(4 * batch_size)
    seconds = {name: float("inf") for name in ways}
    cpu_seconds = {name: float("inf") for name in ways}
    names = list(ways)
    for number in range(repeats):
        for name in (names if number % 2 == 0 else names[::-1]):
            wall, cpu = _timed(lambda: ways[name](len(images)))
            seconds[name], cpu_seconds[name] = min(seconds[name], wall), min(cpu_seconds[name], cpu)
            progress(f"  evaluation {name}: {wall:.2f} s wall, {cpu:.2f} s CPU ({len(images)} images with flip)")
    return {
        "backbone": backbone, "images": len(images), "batch_size": batch_size, "seconds": seconds,
        "cpu_seconds": cpu_seconds, "repeats": repeats,
        "ours_over_predict": seconds["ours"] / seconds["predict"],
        "speedup_over_spec": seconds["spec_loop"] / seconds["ours"],
    }


def raw_decode_dataset(paths, batch_size):
    """Endless batches of just `read_file` + `decode_jpeg` (the accurate IDCT, as `data.decode`), parallel: the
    ceiling for any JPEG pipeline."""
    dataset = tf.data.Dataset.from_tensor_slices(list(paths)).repeat()
    dataset = dataset.map(lambda path: tf.io.decode_jpeg(tf.io.read_file(path), channels=3,
                                                         dct_method="INTEGER_ACCURATE"),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def images_per_second(dataset, batch_size, batches, warmup=3):
    """Images/s of iterating `batches` batches of `dataset` after `warmup` batches."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - started)


def run_pipeline_own(train_dir, batch_size=32, batches=150, quick=False):
    """{pipeline, raw_decode, ratio} images/s: `data.pipeline.train_dataset` vs bare parallel decode, same files."""
    folder = scan_identity_folder(train_dir, progress=False)
    batches = 20 if quick else batches
    pipeline = train_dataset(folder.paths, folder.labels, batch_size, 112, ("flip",), seed=0)
    ours = images_per_second(pipeline, batch_size, batches)
    raw = images_per_second(raw_decode_dataset(folder.paths, batch_size), batch_size, batches)
    return {"pipeline": ours, "raw_decode": raw, "ratio": ours / raw, "files": len(folder),
            "source": "benchmarks.evaluation (own measurement)"}


def _measure_with_helper(train_dir, batch_size, batches, repeats):
    """Rows [(label, images/s, CPU µs/image)] measured with `benchmarks.pipeline_throughput`'s functions."""
    from benchmarks.pipeline_throughput import ACCURATE, best_rate_and_cost, raw_decode_loop, timed_batches

    folder = scan_identity_folder(train_dir, progress=False)
    encoded = []
    for path in folder.paths:
        with open(path, "rb") as file:
            encoded.append(file.read())
    raw = best_rate_and_cost(lambda: raw_decode_loop(encoded, ACCURATE), repeats)
    mapped = best_rate_and_cost(lambda: timed_batches(raw_decode_dataset(folder.paths, batch_size), batches,
                                                      batch_size), repeats)
    pipeline = train_dataset(folder.paths, folder.labels, batch_size, 112, ("flip",), seed=0)
    trained = best_rate_and_cost(lambda: timed_batches(pipeline, batches, batch_size), repeats)
    rows = [("raw tf.io.decode_jpeg loop (eager, 1 thread)", *raw),
            ("tf.data map read+decode_jpeg (parallel)", *mapped),
            (f"train_dataset (flip, batch {batch_size})", *trained)]
    return rows, len(folder)


def run_pipeline(train_dir, batch_size=128, batches=12, repeats=2, quick=False):
    """Images/s of raw decode vs the training pipeline on the JPEGs under `train_dir`.

    Uses the measuring functions of `benchmarks.pipeline_throughput` (raw `decode_jpeg` loop,
    tf.data read+decode map, `train_dataset` with flip; best of `repeats`, with CPU µs per
    image) on these files; falls back to `run_pipeline_own` if that module is missing or its
    functions changed. Returns {rows: [(label, images/s, CPU µs/image or None)], ...}.
    """
    if quick:
        batches, repeats = 3, 1
    try:
        rows, files = _measure_with_helper(train_dir, batch_size, batches, repeats)
        source = "the functions of benchmarks/pipeline_throughput.py"
    except (ImportError, TypeError, ValueError) as error:
        own = run_pipeline_own(train_dir, quick=quick)
        rows = [("tf.data map read+decode_jpeg (parallel)", own["raw_decode"], None),
                ("train_dataset (flip, batch 32)", own["pipeline"], None)]
        files, source = own["files"], f"{own['source']}; pipeline_throughput unusable: {type(error).__name__}"
    return {"rows": rows, "files": files, "source": source, "pipeline_over_decode": rows[-1][1] / rows[-2][1]}
