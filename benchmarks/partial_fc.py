"""Partial FC vs NormDense at many classes: per-replica classifier state, step time, peak memory.

    python -m benchmarks.partial_fc --classes=100000,360000,2000000 --replicas=2 --memory_gib=100

Each configuration (norm_dense; partial_fc at sample_rate 1.0 and 0.1) runs in its own fresh
process on `--replicas` logical CPU replicas (MirroredStrategy), tiny backbone, d = 512,
softmax loss, SGD with momentum 0.9 (arcface_torch's optimizer: one slot per weight), a fixed
batch of `--batch_size` images per replica. Reported per configuration:
- classifier state per replica = bytes of one replica's copy of the class matrix and of the
  optimizer slots shaped like it (counted from the variables' shapes, so exact);
- step = median seconds of `--steps` training steps after 2 warm-up steps;
- step peak = TensorFlow's CPU allocator's highest bytes during the measured steps minus the
  bytes held before them (gradients, logits, all-reduce buffers);
- process peak = the process's peak resident set (VmHWM), building included.
A configuration whose estimated process peak exceeds `--memory_gib` is not started and is
reported as not fitting, with the estimate: 0.5 GiB for TensorFlow and the tiny network, 8
buffers of one replica's matrix size per replica (weight, slot, normalised weight, gradients,
all-reduce buffers) and 2 of the whole (d, C) matrix (both heads draw the initial matrix whole).
Fitted to the measured peaks at 100,000 classes on 2 replicas (norm_dense 3.6 GiB, partial_fc 2.4 GiB).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

EMBEDDING_SIZE = 512
CONFIGURATIONS = (("norm_dense", 1.0), ("partial_fc", 1.0), ("partial_fc", 0.1))
WORKER_MARK = "PARTIAL_FC_RESULT "


def estimated_bytes(head, classes, replicas, embedding_size=EMBEDDING_SIZE):
    """Rough peak bytes of a training process (see the module docstring), float32."""
    columns = classes if head == "norm_dense" else -(-classes // replicas)
    return 2**29 + 4 * embedding_size * (8 * replicas * columns + 2 * classes)


def classifier_state_bytes(model):
    """Bytes one replica holds for the classifier: its copy of the class matrix and the slots shaped like it."""
    from recipes.face_model import is_class_sharded

    if is_class_sharded(model.head):
        kernel, optimizer = model.head.kernel, model.head._optimizer.value
    else:
        kernel, optimizer = model.head.kernel, model.optimizer
    shaped_like = [variable for variable in optimizer.variables if tuple(variable.shape) == tuple(kernel.shape)]
    return sum(4 * int(variable.shape[0]) * int(variable.shape[1]) for variable in [kernel] + shaped_like)


def worker(head, rate, classes, replicas, batch_size, steps):
    """Measure one configuration in this process; returns the result dict."""
    import keras
    import tensorflow as tf

    from benchmarks.throughput import peak_rss_bytes, random_batch, train_steps
    from recipes.distribution import make_strategy
    from recipes.recipe import Recipe
    from recipes.train import build_training_model

    strategy = make_strategy("mirrored" if replicas > 1 else "default", cpu_replicas=replicas)
    recipe = Recipe(name="bench", loss="softmax", backbone="tiny", embedding_size=EMBEDDING_SIZE, head=head,
                    head_args={"sample_rate": rate} if head == "partial_fc" else {})
    started = time.perf_counter()
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = build_training_model(recipe, classes)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        model.optimizer.build(model.trainable_variables)
    build_seconds = time.perf_counter() - started
    images, labels = random_batch(classes, batch_size=batch_size * replicas)
    train_steps(model, images, labels, 2)
    tf.config.experimental.reset_memory_stats("CPU:0")
    held = tf.config.experimental.get_memory_info("CPU:0")["current"]
    seconds = train_steps(model, images, labels, steps)
    return {
        "head": head, "sample_rate": rate, "classes": classes, "replicas": replicas, "batch_size": batch_size,
        "classifier_state_bytes": classifier_state_bytes(model), "step_seconds": statistics.median(seconds),
        "step_times": seconds, "build_seconds": build_seconds,
        "step_peak_bytes": tf.config.experimental.get_memory_info("CPU:0")["peak"] - held,
        "process_peak_bytes": peak_rss_bytes(),
    }


def measure(head, rate, classes, replicas, batch_size, steps, memory_gib):
    """The worker's result for one configuration in a fresh process, or a 'does not fit' row."""
    needed = estimated_bytes(head, classes, replicas)
    row = {"head": head, "sample_rate": rate, "classes": classes, "replicas": replicas, "estimated_bytes": needed}
    if needed > memory_gib * 2**30:
        return {**row, "fits": False}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [sys.executable, "-m", "benchmarks.partial_fc", "--worker", f"--head={head}", f"--rate={rate}",
               f"--classes={classes}", f"--replicas={replicas}", f"--batch_size={batch_size}", f"--steps={steps}"]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                   "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(WORKER_MARK)]
    if result.returncode != 0 or not lines:
        return {**row, "fits": False, "error": f"exit {result.returncode}: {result.stderr.strip()[-500:]}"}
    return {**row, "fits": True, **json.loads(lines[-1][len(WORKER_MARK):])}


def table(rows):
    """Markdown table of the measured rows."""
    lines = ["| classes | head | rate | classifier state / replica | step | step peak | process peak |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        name = f"| {row['classes']:,} | {row['head']} | {row['sample_rate']} |"
        if not row["fits"]:
            needed = row["estimated_bytes"] / 2**30
            reason = row.get("error") or f"does not fit in the budget: needs about {needed:.1f} GiB"
            lines.append(f"{name} {reason} | | | |")
            continue
        lines.append(f"{name} {row['classifier_state_bytes'] / 2**20:,.0f} MiB | {1000 * row['step_seconds']:,.0f} ms "
                     f"| {row['step_peak_bytes'] / 2**20:,.0f} MiB | {row['process_peak_bytes'] / 2**30:,.2f} GiB |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", default="100000,360000,2000000", help="comma-separated class counts")
    parser.add_argument("--replicas", type=int, default=2, help="logical CPU replicas (MirroredStrategy)")
    parser.add_argument("--batch_size", type=int, default=16, help="images per replica")
    parser.add_argument("--steps", type=int, default=5, help="measured steps per configuration")
    parser.add_argument("--memory_gib", type=float, default=4.0,
                        help="skip (and report as not fitting) configurations estimated above this many GiB")
    parser.add_argument("--worker", action="store_true", help="measure one configuration in this process")
    parser.add_argument("--head", default="partial_fc")
    parser.add_argument("--rate", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.worker:
        result = worker(args.head, args.rate, int(args.classes), args.replicas, args.batch_size, args.steps)
        print(WORKER_MARK + json.dumps(result), flush=True)
        return
    rows = []
    for classes in (int(count) for count in args.classes.split(",")):
        for head, rate in CONFIGURATIONS:
            rows.append(measure(head, rate, classes, args.replicas, args.batch_size, args.steps, args.memory_gib))
            print(json.dumps({key: value for key, value in rows[-1].items() if key != "step_times"}), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
