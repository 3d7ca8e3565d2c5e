"""Head scaling: step time and memory at 1k, 10k and 85,742 classes, ours (sparse labels) vs one-hot reference.

All six models (ours and the spec-style reference at each class count, same backbone,
resnet50v2 by default) are built in one fresh subprocess (`python -m benchmarks.head_scaling
--worker`) and trained on one fixed in-memory batch, one step each per turn, the order
reversed every turn (`benchmarks.throughput.compare_step_times`). So the k-th steps of all
six ran next to each other in time, and "85,742 vs 1,000 classes" is the median over turns
of t(85,742)[k] / t(1,000)[k] (bootstrap 90% interval): load from other processes on a
shared machine falls on both alike.

Memory per model:
- state = bytes of every variable the model keeps: weights, BatchNorm statistics, optimizer
  slots, centre-loss centres (counted from the variables' shapes, so exact);
- step = from TensorFlow's CPU allocator (`tf.config.experimental.get_memory_info`), the
  highest bytes allocated during one of the model's measured steps minus the bytes
  allocated when it began (`reset_memory_stats` first): activations, gradients, the
  normalised head, logits, one-hot labels — the transient memory of a training step;
- memory = state + step. The subprocess's peak resident set (VmHWM: all six models and
  TensorFlow itself) is reported beside it.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HEAD_CLASSES = (1000, 10000, 85742)
WORKER_MARK = "HEAD_SCALING_RESULT "


def variable_bytes(model):
    """Bytes of all variables of `model`, its optimizer and a reference's centre loss (each once)."""
    variables = list(model.variables) + list(model.optimizer.variables)
    center_loss = getattr(model, "center_loss", None)
    if center_loss is not None:
        variables.append(center_loss.centers)
    unique = {id(variable): variable for variable in variables}.values()
    return int(sum(int(np.prod(variable.shape)) * np.dtype(getattr(variable.dtype, "as_numpy_dtype", variable.dtype))
                   .itemsize for variable in unique))


def worker(classes, backbone, loss_name, warmup, pairs):
    """Measure every class count in `classes` in this process; returns the result dict (printed by `main`)."""
    import tensorflow as tf

    from benchmarks.reference import one_hot
    from benchmarks.throughput import (BATCH_SIZE, build_ours, build_spec_reference, peak_rss_bytes, random_batch,
                                       train_steps)

    contenders, state = {}, {}
    for count in classes:
        images, labels = random_batch(count)
        for side, build, side_labels in (("ours", build_ours, labels), ("reference", build_spec_reference,
                                                                          one_hot(labels, count))):
            started = time.perf_counter()
            model = build(backbone, loss_name, count)
            train_steps(model, images, side_labels, warmup)
            state[(side, count)] = variable_bytes(model)
            contenders[(side, count)] = (model, images, side_labels)
            print(f"{side} {count}: built and warmed up in {time.perf_counter() - started:.1f} s", file=sys.stderr,
                  flush=True)
    times = {key: [] for key in contenders}
    step_peak = {key: 0 for key in contenders}
    names = list(contenders)
    for number in range(pairs):
        for key in (names if number % 2 == 0 else names[::-1]):
            model, images, side_labels = contenders[key]
            tf.config.experimental.reset_memory_stats("CPU:0")
            start = tf.config.experimental.get_memory_info("CPU:0")["current"]
            times[key].extend(train_steps(model, images, side_labels, 1))
            step_peak[key] = max(step_peak[key], tf.config.experimental.get_memory_info("CPU:0")["peak"] - start)
    return {
        "classes": list(classes), "backbone": backbone, "loss": loss_name, "batch_size": BATCH_SIZE,
        "process_peak_rss_bytes": peak_rss_bytes(),
        "rows": [{
            "side": side, "classes": count, "step_seconds": statistics.median(times[(side, count)]),
            "step_times": times[(side, count)], "state_bytes": state[(side, count)],
            "step_peak_bytes": step_peak[(side, count)],
            "memory_bytes": state[(side, count)] + step_peak[(side, count)],
        } for side, count in names],
    }


def summarise(result):
    """Per class count: {classes, ours, reference (row dicts), ours_scale, reference_scale (+ _low/_high)}.

    A scale is this count's step time over the smallest count's, the median of paired
    per-turn ratios with its bootstrap 90% interval (`benchmarks.throughput.paired_ratio`);
    `ours_speed` (+ _low/_high) is t_reference / t_ours at this count, paired the same way.
    """
    from benchmarks.throughput import paired_ratio

    rows = {(row["side"], row["classes"]): row for row in result["rows"]}
    smallest = min(result["classes"])
    summary = []
    for count in result["classes"]:
        entry = {"classes": count, "ours": rows[("ours", count)], "reference": rows[("reference", count)]}
        speed, low, high = paired_ratio(rows[("reference", count)]["step_times"], rows[("ours", count)]["step_times"])
        entry.update({"ours_speed": speed, "ours_speed_low": low, "ours_speed_high": high})
        for side in ("ours", "reference"):
            scale, low, high = paired_ratio(rows[(side, count)]["step_times"], rows[(side, smallest)]["step_times"])
            entry.update({f"{side}_scale": scale, f"{side}_scale_low": low, f"{side}_scale_high": high})
        summary.append(entry)
    return summary


def run_head_scaling(classes=HEAD_CLASSES, backbone="resnet50v2", loss_name="softmax", quick=False, progress=print):
    """The `worker` result for all of `classes`, measured in one fresh subprocess, plus its `summary`."""
    warmup, pairs = (2, 2) if quick else (2, 6)
    started = time.perf_counter()
    command = [sys.executable, "-m", "benchmarks.head_scaling", "--worker",
               "--classes=" + ",".join(str(count) for count in classes), f"--backbone={backbone}",
               f"--loss={loss_name}", f"--warmup={warmup}", f"--pairs={pairs}"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
                   "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, cwd=root, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    stderr_lines = []
    for line in process.stderr:
        stderr_lines.append(line)
        if line.startswith(("ours ", "reference ")):
            progress(f"    {line.strip()}")
    stdout = process.stdout.read()
    process.wait()
    lines = [line for line in stdout.splitlines() if line.startswith(WORKER_MARK)]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"head-scaling worker failed (exit {process.returncode}):\n{''.join(stderr_lines)[-3000:]}")
    result = json.loads(lines[-1][len(WORKER_MARK):])
    result["summary"] = summarise(result)
    for entry in result["summary"]:
        progress(f"  head {entry['classes']} classes ({loss_name}, {backbone}): ours "
                 f"{1000 * entry['ours']['step_seconds']:.0f} ms/step ({entry['ours_scale']:.2f}x), reference "
                 f"{1000 * entry['reference']['step_seconds']:.0f} ms/step ({entry['reference_scale']:.2f}x); memory "
                 f"ours {entry['ours']['memory_bytes'] / 2**20:.0f} MiB, reference "
                 f"{entry['reference']['memory_bytes'] / 2**20:.0f} MiB")
    progress(f"  head scaling done in {time.perf_counter() - started:.0f} s")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description="Head-scaling benchmark: step time and memory against class count.")
    parser.add_argument("--worker", action="store_true", help="measure in this process and print one JSON line")
    parser.add_argument("--classes", default=",".join(str(count) for count in HEAD_CLASSES),
                        help="comma-separated class counts; the smallest is the base of the scale")
    parser.add_argument("--backbone", default="resnet50v2")
    parser.add_argument("--loss", default="softmax")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=6, help="measured steps per model, taken in turns")
    args = parser.parse_args(argv)
    classes = tuple(int(count) for count in args.classes.split(","))
    if not args.worker:
        result = run_head_scaling(classes, args.backbone, args.loss)
        print(json.dumps(result["summary"], indent=1))
        return
    result = worker(classes, args.backbone, args.loss, args.warmup, args.pairs)
    print(WORKER_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
