"""Training throughput, ours vs the spec-style reference, and the fraction of the machine's peak FLOP/s.

Both sides train the same architecture (`build_embedding_model` with the same backbone
and neck) on the same in-memory random batch, so no data pipeline is measured. Ours is
built by `recipes.train.build_training_model` from the registered recipe, exactly as a
run builds it; the reference by `benchmarks.reference.build_reference`.

Timing: after warm-up steps (tracing, first-touch allocation) the models take turns, one
training step each per turn (the step function Keras compiles for `fit`, called through
`train_on_batch`), the order reversed every turn. Steady-state images/s = batch / median
step time. The ratio ours/reference is the median over turns of t_reference / t_ours, with
a bootstrap 90% interval: the machine may be shared, and pairing steps that ran next to
each other cancels most of the load other processes put on it.
"""
import os
import platform
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

import backbones
from benchmarks.reference import build_reference, one_hot
from recipes.train import build_training_model
from registry import RECIPES

BATCH_SIZE = 32
IMAGE_SIZE = 112
THROUGHPUT_CLASSES = 1000
THROUGHPUT_BACKBONES = ("tiny", "mobilenetv2", "resnet50v2")
THROUGHPUT_LOSSES = ("softmax", "center_arcface")


def train_steps(model, images, labels, steps):
    """Seconds of each of `steps` training steps of `model` on the fixed batch (images, labels).

    One step = one call of the step function Keras compiles for `fit` (`train_on_batch`),
    timed from call to returned logs (the logs are fetched to NumPy, so the step is finished).
    """
    seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        model.train_on_batch(images, labels)
        seconds.append(time.perf_counter() - started)
    return seconds


def compare_step_times(contenders, warmup_steps, pairs, progress=print):
    """{name: [step seconds, ...]} for `contenders` {name: (model, images, labels)}, measured in turns.

    After `warmup_steps` steps each (tracing, first-touch allocation), every contender runs
    one step per turn, `pairs` turns, the order reversed every turn, so the k-th steps of
    all contenders ran next to each other in time and see the same load from other processes.
    """
    for name, (model, images, labels) in contenders.items():
        started = time.perf_counter()
        train_steps(model, images, labels, warmup_steps)
        progress(f"    warmed up {name} ({warmup_steps} steps, {time.perf_counter() - started:.1f} s)")
    times = {name: [] for name in contenders}
    names = list(contenders)
    for number in range(pairs):
        for name in (names if number % 2 == 0 else names[::-1]):
            model, images, labels = contenders[name]
            times[name].extend(train_steps(model, images, labels, 1))
    return times


def paired_ratio(numerator_times, denominator_times, resamples=2000, seed=0):
    """(median of t_num[k] / t_den[k], 5th and 95th percentile of that median by bootstrap over k).

    With t_num the reference's step times and t_den ours, the estimate is how many times
    faster ours is; the interval shows how much of it the machine's noise could explain.
    """
    ratios = np.asarray(numerator_times) / np.asarray(denominator_times)
    generator = np.random.default_rng(seed)
    medians = np.median(ratios[generator.integers(0, len(ratios), (resamples, len(ratios)))], axis=1)
    return float(np.median(ratios)), float(np.percentile(medians, 5)), float(np.percentile(medians, 95))


def random_batch(num_classes, batch_size=BATCH_SIZE, image_size=IMAGE_SIZE, seed=0):
    """(images float32 (B, S, S, 3) uniform in 0..255, labels int32 (B,) uniform in [0, C))."""
    generator = tf.random.Generator.from_seed(seed)
    images = generator.uniform((batch_size, image_size, image_size, 3), 0.0, 255.0)
    labels = generator.uniform((batch_size,), 0, num_classes, dtype=tf.int32)
    return images, labels


def build_ours(backbone, loss_name, num_classes, batch_size=BATCH_SIZE, seed=0):
    """The training model the registered recipe `loss_name` builds, with `backbone` (our path)."""
    keras.utils.set_random_seed(seed)
    recipe = RECIPES.build(loss_name).replace(backbone=backbone, batch_size=batch_size, image_size=IMAGE_SIZE)
    return build_training_model(recipe, num_classes)


def build_spec_reference(backbone, loss_name, num_classes, seed=0):
    """The spec-style reference with the same embedding model architecture (see `benchmarks.reference`)."""
    keras.utils.set_random_seed(seed)
    recipe = RECIPES.build(loss_name)
    embedder = backbones.build_embedding_model(backbone, recipe.embedding_size, recipe.dropout, IMAGE_SIZE)
    return build_reference(embedder, loss_name, num_classes, learning_rate=recipe.lr)


def forward_flops(model, image_size=IMAGE_SIZE):
    """Float operations of one inference forward pass of one image, counted by TF's graph profiler.

    `tf.compat.v1.profiler` over the graph of `model(images, training=False)` traced for a
    (1, S, S, 3) input: the sum of the registered float-op statistics of every op (Conv2D,
    DepthwiseConv2dNative and MatMul as 2·MACs, plus element-wise ops such as BiasAdd, Mul, Add).
    """
    function = tf.function(lambda images: model(images, training=False))
    graph = function.get_concrete_function(tf.TensorSpec((1, image_size, image_size, 3), tf.float32)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def matmul_peak_flops(size=4096, repeats=5):
    """Best FLOP/s of a float32 (size x size) @ (size x size) `tf.matmul` (2·size³ FLOPs) over `repeats` runs."""
    first = tf.random.normal((size, size))
    second = tf.random.normal((size, size))
    multiply = tf.function(tf.matmul)
    multiply(first, second).numpy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        multiply(first, second).numpy()
        best = min(best, time.perf_counter() - started)
    return 2.0 * size ** 3 / best


def machine_description():
    """{'cpu', 'cores', 'tensorflow', 'keras', 'python', 'load'}: the facts a reader needs to weigh the numbers."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as file:
            names = [line.split(":", 1)[1].strip() for line in file if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "tensorflow": tf.__version__, "keras": keras.__version__,
            "python": platform.python_version(), "load": load_average()}


def peak_rss_bytes():
    """This process's peak resident set size (VmHWM) in bytes, or None where /proc is missing."""
    try:
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def load_average():
    """The 1-minute load average (other processes competing for the cores), or None where unknown."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run_throughput(backbone_names=THROUGHPUT_BACKBONES, loss_names=THROUGHPUT_LOSSES, quick=False, progress=print):
    """Rows {backbone, loss, ours, reference (images/s), ratio, ratio_low, ratio_high, forward_flops, ...}."""
    schedule = {"tiny": (5, 40), "mobilenetv2": (3, 12), "resnet50v2": (2, 8)}  # (warm-up steps, turns)
    rows = []
    for backbone in backbone_names:
        warmup, pairs = (2, 2) if quick else schedule.get(backbone, (2, 6))
        started = time.perf_counter()
        images, labels = random_batch(THROUGHPUT_CLASSES)
        contenders, flops = {}, None
        for loss_name in loss_names:
            ours = build_ours(backbone, loss_name, THROUGHPUT_CLASSES)
            if flops is None:
                flops = forward_flops(ours)
            contenders[("ours", loss_name)] = (ours, images, labels)
            reference = build_spec_reference(backbone, loss_name, THROUGHPUT_CLASSES)
            contenders[("reference", loss_name)] = (reference, images, one_hot(labels, THROUGHPUT_CLASSES))
        progress(f"  throughput {backbone}: built {len(contenders)} models; forward {flops / 1e9:.3f} GFLOP/image")
        times = compare_step_times(contenders, warmup, pairs, progress)
        for loss_name in loss_names:
            ours_times, reference_times = times[("ours", loss_name)], times[("reference", loss_name)]
            ratio, low, high = paired_ratio(reference_times, ours_times)
            rows.append({
                "backbone": backbone, "loss": loss_name, "ours": BATCH_SIZE / statistics.median(ours_times),
                "reference": BATCH_SIZE / statistics.median(reference_times), "ratio": ratio, "ratio_low": low,
                "ratio_high": high, "forward_flops": flops, "train_flops": 3 * flops, "steps": len(ours_times),
            })
            progress(f"  throughput {backbone} {loss_name}: ours {rows[-1]['ours']:.1f} img/s, reference "
                     f"{rows[-1]['reference']:.1f} img/s, ratio {ratio:.2f}x (90% {low:.2f}-{high:.2f})")
        progress(f"  throughput {backbone} done in {time.perf_counter() - started:.0f} s")
        del contenders
        keras.backend.clear_session()
    return rows
