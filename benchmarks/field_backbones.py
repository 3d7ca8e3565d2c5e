"""The field's backbones (arcface_torch's IResNet, MobileFaceNet): size, MACs, and training speed ours vs the spec's way.

For each backbone: weights and multiply-accumulates per 112×112 image (`benchmarks.macs`), then
training images/s of our recipe path (`arcface` recipe: sparse labels, dict outputs) against the
spec-style reference (`benchmarks.reference`: one-hot labels, concatenated output) on the same
embedding network and the same in-memory batch, measured in alternating turns
(`benchmarks.throughput.compare_step_times`), and the fraction of the machine's matmul peak that
ours reaches (training ≈ 3 × forward FLOPs, forward = 2 × MACs).

    python -m benchmarks.field_backbones --batch_size=8 --turns=3 mobilefacenet iresnet50
"""
import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NUM_CLASSES = 1000
LOSS = "arcface"


def measure(backbone, batch_size, warmup, turns, peak, progress=print):
    """{backbone, weights, macs, ours, reference (images/s), ratio, ratio_low, ratio_high, peak_fraction}."""
    from benchmarks.macs import model_macs
    from benchmarks.reference import one_hot
    from benchmarks.throughput import (build_ours, build_spec_reference, compare_step_times, paired_ratio,
                                       random_batch)

    images, labels = random_batch(NUM_CLASSES, batch_size=batch_size)
    ours = build_ours(backbone, LOSS, NUM_CLASSES, batch_size=batch_size)
    reference = build_spec_reference(backbone, LOSS, NUM_CLASSES)
    macs = model_macs(ours.embedder)
    contenders = {"ours": (ours, images, labels), "reference": (reference, images, one_hot(labels, NUM_CLASSES))}
    times = compare_step_times(contenders, warmup, turns, progress)
    ratio, low, high = paired_ratio(times["reference"], times["ours"])
    ours_speed = batch_size / statistics.median(times["ours"])
    return {"backbone": backbone, "weights": ours.embedder.count_params(), "macs": macs, "ours": ours_speed,
            "reference": batch_size / statistics.median(times["reference"]), "ratio": ratio, "ratio_low": low,
            "ratio_high": high, "peak_fraction": ours_speed * 3 * 2 * macs / peak}


def format_rows(rows, batch_size, peak):
    """A markdown table of `measure` rows."""
    lines = [f"training at batch {batch_size}, 112×112, loss {LOSS}; matmul peak {peak / 1e9:.0f} GFLOP/s",
             "", "| backbone | weights | G MACs | ours img/s | spec-way img/s | ours / spec (90%) | % of peak |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['backbone']} | {row['weights']:,} | {row['macs'] / 1e9:.2f} | {row['ours']:.1f} | "
                     f"{row['reference']:.1f} | {row['ratio']:.2f} ({row['ratio_low']:.2f}–{row['ratio_high']:.2f}) | "
                     f"{100 * row['peak_fraction']:.0f} % |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.field_backbones", description=__doc__.splitlines()[0])
    parser.add_argument("backbones", nargs="*", default=["mobilefacenet", "iresnet50"])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model (tracing)")
    parser.add_argument("--turns", type=int, default=3, help="timed steps per model, in alternating turns")
    args = parser.parse_args(argv)

    import keras

    import backbones  # noqa: F401  (registers the backbones)
    from benchmarks.throughput import matmul_peak_flops

    peak = matmul_peak_flops(size=2048)
    rows = []
    for backbone in args.backbones:
        rows.append(measure(backbone, args.batch_size, args.warmup, args.turns, peak))
        print(f"  {backbone}: ours {rows[-1]['ours']:.1f} img/s, spec way {rows[-1]['reference']:.1f} img/s", flush=True)
        keras.backend.clear_session()
    print(format_rows(rows, args.batch_size, peak))


if __name__ == "__main__":
    main()
