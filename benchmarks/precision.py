"""Training speed per precision: our recipe path in float32, in mixed precision and as `--mixed_precision=auto` picks, each against the spec-style float32 reference.

For every backbone and batch size, three models train in one process, in alternating turns
(`benchmarks.throughput.compare_step_times`), on the same in-memory batch (arcface recipe,
1,000 classes, 112×112): the spec-style reference in float32 (`benchmarks.reference`: one-hot
labels, concatenated output), our path in float32, and our path in mixed precision
(mixed_bfloat16 on a CPU, mixed_float16 on a GPU). `auto` is the one of ours that
`recipes.distribution.precision_choice("auto", backbone)` picks, so its ratio is that model's
(a fourth model only on a GPU where it picks mixed_bfloat16). Ratios are medians of paired
per-turn ratios t_reference / t_ours with a bootstrap 90% interval
(`benchmarks.throughput.paired_ratio`).

    python -m benchmarks.precision --batch_sizes=32,128 resnet50v2 mobilenetv2
"""
import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NUM_CLASSES = 1000
LOSS = "arcface"
# --mixed_precision=auto by default must reach these multiples of the spec-style float32 reference (issue 19).
GOALS = {"resnet50v2": 1.25, "mobilenetv2": 0.95}


def build_with_policy(policy, build):
    """`build()` under the global Keras dtype policy `policy`, restoring float32 afterwards."""
    import keras

    keras.mixed_precision.set_global_policy(policy)
    try:
        return build()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def measure(backbone, batch_size, warmup, turns, progress=print):
    """{backbone, batch_size, mixed (policy name), auto (policy name), auto_reason, images/s and paired ratios}."""
    import tensorflow as tf

    from benchmarks.reference import one_hot
    from benchmarks.throughput import build_ours, build_spec_reference, compare_step_times, paired_ratio, random_batch
    from recipes.distribution import precision_choice

    gpu = bool(tf.config.list_physical_devices("GPU"))
    mixed = "mixed_float16" if gpu else "mixed_bfloat16"
    images, labels = random_batch(NUM_CLASSES, batch_size=batch_size)
    contenders = {
        "reference": (build_spec_reference(backbone, LOSS, NUM_CLASSES), images, one_hot(labels, NUM_CLASSES)),
        "float32": (build_ours(backbone, LOSS, NUM_CLASSES, batch_size=batch_size), images, labels),
        mixed: (build_with_policy(mixed, lambda: build_ours(backbone, LOSS, NUM_CLASSES, batch_size=batch_size)),
                images, labels),
    }
    auto, reason = precision_choice("auto", backbone, gpu=gpu)
    if auto not in contenders:  # on a GPU, auto may pick mixed_bfloat16 (compute capability >= 8.0)
        contenders[auto] = (build_with_policy(auto, lambda: build_ours(backbone, LOSS, NUM_CLASSES,
                                                                       batch_size=batch_size)), images, labels)
    times = compare_step_times(contenders, warmup, turns, progress)
    row = {"backbone": backbone, "batch_size": batch_size, "mixed": mixed, "auto": auto, "auto_reason": reason,
           "turns": turns}
    for name, seconds in times.items():
        row[f"{name}_images_per_second"] = batch_size / statistics.median(seconds)
    for name in ("float32", mixed):
        row[f"{name}_vs_reference"] = paired_ratio(times["reference"], times[name])
    row["mixed_vs_float32"] = paired_ratio(times["float32"], times[mixed])
    row["auto_vs_reference"] = row.get(f"{auto}_vs_reference") or paired_ratio(times["reference"], times[auto])
    return row


def _ratio(triple):
    return f"{triple[0]:.2f}x ({triple[1]:.2f}–{triple[2]:.2f})"


def format_rows(rows):
    """A markdown table of `measure` rows, with the goal of each backbone that has one."""
    mixed = rows[0]["mixed"] if rows else "mixed"
    lines = [f"| backbone | batch | reference float32 img/s | ours float32 img/s (vs reference, 90%) | ours {mixed} "
             f"img/s (vs reference) | {mixed} / float32 | auto picks | auto vs reference | goal |",
             "|---|---:|---:|---|---|---|---|---|---|"]
    for row in rows:
        goal = GOALS.get(row["backbone"])
        verdict = ""
        if goal is not None:
            met = row["auto_vs_reference"][0] >= goal
            verdict = f"≥ {goal:.2f}x: {'yes' if met else '**no**'}"
        lines.append(
            f"| {row['backbone']} | {row['batch_size']} | {row['reference_images_per_second']:.1f} | "
            f"{row['float32_images_per_second']:.1f} ({_ratio(row['float32_vs_reference'])}) | "
            f"{row[row['mixed'] + '_images_per_second']:.1f} ({_ratio(row[row['mixed'] + '_vs_reference'])}) | "
            f"{_ratio(row['mixed_vs_float32'])} | {row['auto']} | {_ratio(row['auto_vs_reference'])} | {verdict} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__.splitlines()[0])
    parser.add_argument("backbones", nargs="*", default=["resnet50v2", "mobilenetv2"])
    parser.add_argument("--batch_sizes", default="32,128", help="comma-separated batch sizes")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model (tracing)")
    parser.add_argument("--turns", type=int, default=8, help="timed steps per model, in alternating turns")
    args = parser.parse_args(argv)

    import keras

    from benchmarks.throughput import machine_description

    print(machine_description(), flush=True)
    rows = []
    for backbone in args.backbones:
        for batch_size in (int(size) for size in args.batch_sizes.split(",")):
            rows.append(measure(backbone, batch_size, args.warmup, args.turns))
            print(f"  auto = {rows[-1]['auto']} ({rows[-1]['auto_reason']}); row:", flush=True)
            print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
            keras.backend.clear_session()
    print(format_rows(rows))


if __name__ == "__main__":
    main()
