"""`python -m benchmarks --gpu [--out=FILE]`: training speed on whatever GPU is visible, in at most ~8 minutes.

With TensorFlow and a GPU (`pip install -e .[gpu]`): our training step (`recipes.train.build_training_model`,
arcface recipe, 1,000 classes, random in-memory batch) of iresnet50 and resnet50v2 in float32, mixed
float16 and mixed float16 + XLA at batch 128 and 512, next to the spec-style reference in float32;
images/s, and the fraction of the GPU's measured matmul peak (training ≈ 3 × the forward pass's 2 · MACs);
then the head alone at 1M classes: `norm_dense` vs `partial_fc` (sample rate 0.1) if it is registered.

Without TensorFlow but with Keras 3 on JAX and a GPU (`KERAS_BACKEND=jax`), it measures what it can
and says so: the same backbones and embedding block (plain Keras layers) with a plain cosine-softmax
classifier, compiled by XLA, in float32, mixed float16 and mixed bfloat16. That is a property of
the networks on that GPU, not of our TensorFlow training path.
"""
import argparse
import os
import platform
import statistics
import time

BACKBONES = ("iresnet50", "resnet50v2")
BATCHES = (128, 512)
PROXY_BATCHES = (128,)
CLASSES = 1000
HEAD_CLASSES = 1_000_000
WARMUP_STEPS = 3
TIMED_STEPS = 15
PEAK_SIZE = 8192  # matrix side of the matmul that measures the peak FLOP/s


def step_seconds(step, warmup=WARMUP_STEPS, timed=TIMED_STEPS):
    """Median seconds of `step()` (which must block until the step is done) after `warmup` calls."""
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(timed):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def tensorflow_gpu():
    """True when TensorFlow imports and sees a GPU."""
    try:
        import tensorflow as tf
    except ImportError:
        return False
    return bool(tf.config.list_physical_devices("GPU"))


def run_tensorflow(progress):
    """Markdown sections of the TensorFlow measurements (our training path)."""
    import keras
    import tensorflow as tf

    from benchmarks.macs import model_macs
    from benchmarks.throughput import build_spec_reference, random_batch
    from recipes.train import build_training_model
    from registry import HEADS, RECIPES

    def peak(dtype):
        matrix = tf.random.uniform((PEAK_SIZE, PEAK_SIZE), dtype=dtype)
        seconds = step_seconds(lambda: tf.matmul(matrix, matrix).numpy()[:1, :1], warmup=2, timed=5)
        return 2 * PEAK_SIZE ** 3 / seconds

    peaks = {"float32": peak(tf.float32), "float16": peak(tf.float16)}
    progress(f"matmul peak: float32 {peaks['float32'] / 1e12:.0f}, float16 {peaks['float16'] / 1e12:.0f} TFLOP/s")
    rows = []
    for backbone in BACKBONES:
        for batch in BATCHES:
            images, labels = random_batch(CLASSES, batch)
            for policy, xla in (("float32", False), ("mixed_float16", False), ("mixed_float16", True)):
                keras.mixed_precision.set_global_policy(policy)
                recipe = RECIPES.build("arcface").replace(backbone=backbone, batch_size=batch, jit_compile=xla)
                model = build_training_model(recipe, CLASSES)
                try:
                    seconds = step_seconds(lambda: model.train_on_batch(images, labels))
                except tf.errors.ResourceExhaustedError:
                    rows.append([backbone, batch, policy + (" + XLA" if xla else ""), "out of memory", "", ""])
                    continue
                flops = 6 * model_macs(model.embedder)
                used = peaks["float16" if policy != "float32" else "float32"]
                rows.append([backbone, batch, policy + (" + XLA" if xla else ""), f"{batch / seconds:,.0f}",
                             f"{100 * flops * batch / seconds / used:.0f}%", ""])
                progress(f"{backbone} batch {batch} {policy}{' + XLA' if xla else ''}: {batch / seconds:,.0f} img/s")
            keras.mixed_precision.set_global_policy("float32")
            reference = build_spec_reference(backbone, "arcface", CLASSES)
            seconds = step_seconds(lambda: reference.train_on_batch(images, tf.one_hot(labels, CLASSES)))
            rows.append([backbone, batch, "spec-style reference, float32", f"{batch / seconds:,.0f}", "", ""])
    sections = ["### Training (arcface, 1,000 classes, 112×112)\n\n" + table(
        ["backbone", "batch", "precision", "images/s", "% of matmul peak", ""], rows)]
    head_rows = []
    for head, args in (("norm_dense", {}), ("partial_fc", {"sample_rate": 0.1})):
        if head not in HEADS:
            head_rows.append([head, "not registered in this version"])
            continue
        recipe = RECIPES.build("arcface").replace(backbone="tiny", head=head, head_args=args, batch_size=128)
        try:
            model = build_training_model(recipe, HEAD_CLASSES)
            images, labels = random_batch(HEAD_CLASSES, 128)
            seconds = step_seconds(lambda: model.train_on_batch(images, labels))
            head_rows.append([head + (" 0.1" if args else ""), f"{1000 * seconds:.1f} ms/step"])
        except tf.errors.ResourceExhaustedError:
            head_rows.append([head, "out of memory"])
    sections.append("### Head at 1,000,000 classes (tiny backbone, batch 128, d = 512)\n\n" + table(
        ["head", "step time"], head_rows))
    return sections


def run_keras_jax(progress):
    """Markdown sections of the Keras-on-JAX measurement of the networks (no TensorFlow on this machine)."""
    import jax
    import jax.numpy as jnp
    import keras

    import backbones
    from benchmarks.macs import model_macs

    def peak(dtype):
        matrix = jnp.ones((PEAK_SIZE, PEAK_SIZE), dtype)
        product = jax.jit(lambda a: a @ a)
        return 2 * PEAK_SIZE ** 3 / step_seconds(lambda: product(matrix).block_until_ready(), warmup=2, timed=5)

    peaks = {"float32": peak(jnp.float32), "float16": peak(jnp.float16), "bfloat16": peak(jnp.bfloat16)}
    progress("matmul peak TFLOP/s: " + ", ".join(f"{k} {v / 1e12:.0f}" for k, v in peaks.items()))
    rows = []
    for backbone in BACKBONES:
        macs = model_macs(backbones.build_embedding_model(backbone, 512, 0.0, 112))
        for batch in PROXY_BATCHES:
            images = jax.random.uniform(jax.random.PRNGKey(0), (batch, 112, 112, 3), minval=0, maxval=255)
            labels = jax.random.randint(jax.random.PRNGKey(1), (batch,), 0, CLASSES)
            for policy in ("float32", "mixed_float16", "mixed_bfloat16"):
                keras.mixed_precision.set_global_policy(policy)
                embedder = backbones.build_embedding_model(backbone, 512, 0.0, 112)
                normalised = keras.layers.UnitNormalization(dtype="float32")(embedder.output)
                logits = keras.layers.Dense(CLASSES, use_bias=False, dtype="float32")(normalised)
                model = keras.Model(embedder.input, logits)
                model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
                seconds = step_seconds(lambda: model.train_on_batch(images, labels))
                used = peaks["float32" if policy == "float32" else policy.split("_")[1]]
                share = f"{100 * 6 * macs * batch / seconds / used:.0f}%"
                rows.append([backbone, batch, policy, f"{batch / seconds:,.0f}", share])
                progress(f"{backbone} batch {batch} {policy}: {batch / seconds:,.0f} img/s")
    keras.mixed_precision.set_global_policy("float32")
    return ["### Networks on Keras 3 + JAX (XLA), cosine-softmax head, 1,000 classes, 112×112\n\n"
            "Not our TensorFlow training path (TensorFlow is not installed on this machine): the same "
            "backbone and embedding-block layers trained by Keras on JAX.\n\n"
            + table(["backbone", "batch", "precision", "images/s", "% of matmul peak"], rows)]


def gpu_name():
    try:
        import subprocess

        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip() or "unknown GPU"
    except OSError:
        return "unknown GPU (no nvidia-smi)"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks --gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "GPU_REPORT.md"))
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def progress(message):
        print(f"[{time.perf_counter() - started:5.0f} s] {message}", flush=True)

    if tensorflow_gpu():
        engine, sections = "TensorFlow", run_tensorflow(progress)
    elif os.environ.get("KERAS_BACKEND") == "jax":
        engine, sections = "Keras on JAX (no TensorFlow here)", run_keras_jax(progress)
    else:
        raise SystemExit("no GPU visible to TensorFlow; install the GPU build (pip install -e .[gpu]), or set "
                         "KERAS_BACKEND=jax where only JAX has the GPU.")
    report = (f"# GPU benchmark\n\n{gpu_name()}; {engine}; Python {platform.python_version()}; "
              f"{time.perf_counter() - started:.0f} s.\n\n" + "\n\n".join(sections) + "\n")
    with open(args.out, "w") as file:
        file.write(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
