"""What is alive at a training step's memory peak: TensorFlow's profiler trace of one step, ours vs the spec-style reference.

One step of each model (after warm-up) runs under `tf.profiler.experimental` with host tracing,
which records every allocation and deallocation of TensorFlow's CPU allocator with the op that
made it and the tensor's shape. Replaying those events by address gives the bytes in use over
the step; at its highest point, the live buffers are listed by the op that allocated them.
The difference between the two lists is what one head holds at its peak that the other does not.

    python -m benchmarks.step_memory_trace --classes=85742 --backbone=resnet50v2
"""
import argparse
import collections
import glob
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# bytes = what the allocator handed out (its chunk), requested = what the op asked for; TensorFlow's CPU allocator
# (BFC) may hand out a chunk up to 128 MiB larger than requested rather than split a free one.
Allocation = collections.namedtuple("Allocation", "time_ps allocated address bytes op shape requested")


def trace_one_step(model, images, labels, log_dir):
    """Run one training step of `model` under the profiler.

    Returns (path of the `.xplane.pb` it wrote, the allocator's peak bytes during the step above
    its bytes at the start, from `tf.config.experimental.get_memory_info`: the head-scaling
    benchmark's "step" number, for comparison).
    """
    import tensorflow as tf

    options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=3, python_tracer_level=0,
                                                       device_tracer_level=0)
    tf.config.experimental.reset_memory_stats("CPU:0")
    start = tf.config.experimental.get_memory_info("CPU:0")["current"]
    tf.profiler.experimental.start(log_dir, options=options)
    try:
        model.train_on_batch(images, labels)
    finally:
        tf.profiler.experimental.stop()
    allocator_peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] - start
    paths = sorted(glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True))
    if not paths:
        raise RuntimeError(f"the profiler wrote no .xplane.pb under {log_dir}")
    return paths[-1], allocator_peak


def allocation_events(xplane_path):
    """Every MemoryAllocation / MemoryDeallocation event of the trace, in time order, as `Allocation`s."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xplane_path, "rb") as file:
        space.ParseFromString(file.read())
    events = []
    for plane in space.planes:
        names = {key: value.name for key, value in plane.event_metadata.items()}
        stat_names = {key: value.name for key, value in plane.stat_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id)
                if name not in ("MemoryAllocation", "MemoryDeallocation"):
                    continue
                stats = {stat_names.get(stat.metadata_id): _stat_value(stat, plane) for stat in event.stats}
                requested = int(stats.get("requested_bytes") or 0)
                events.append(Allocation(line.timestamp_ns * 1000 + event.offset_ps, name == "MemoryAllocation",
                                         int(stats.get("addr", 0)), int(stats.get("allocation_bytes") or requested),
                                         str(stats.get("tf_op", "") or "?"), str(stats.get("tensor_shape", "") or ""),
                                         requested))
    return sorted(events, key=lambda event: event.time_ps)


def _stat_value(stat, plane):
    kind = stat.WhichOneof("value")
    if kind == "ref_value":
        return plane.stat_metadata[stat.ref_value].name
    return getattr(stat, kind) if kind else None


def live_at_peak(events, size="bytes"):
    """(peak bytes above the step's start, [Allocation alive at that moment]) from replaying `events` by address.

    `size` is the field counted: "bytes" (the allocator's chunks) or "requested" (the tensors).
    Buffers allocated before the step (variables, the batch) are not in the trace and not counted;
    a deallocation of such a buffer is ignored.
    """
    live, current, peak, at_peak = {}, 0, 0, {}
    for event in events:
        if event.allocated:
            live[event.address] = event
            current += getattr(event, size)
            if current > peak:
                peak, at_peak = current, dict(live)
        elif event.address in live:
            current -= getattr(live.pop(event.address), size)
    return peak, list(at_peak.values())


def by_op(allocations):
    """{(op, requested MiB): total allocated bytes} of `allocations`."""
    totals = collections.Counter()
    for allocation in allocations:
        totals[(allocation.op, f"{allocation.requested / 2**20:,.1f}")] += allocation.bytes
    return totals


def format_comparison(peaks, top=12):
    """Markdown: each side's peak, its largest live buffers (allocated chunk and requested size, by op), and the
    difference between the two sides at their peaks."""
    lines = []
    totals = {side: by_op(allocations) for side, (_, allocations) in peaks.items()}
    for side, (peak, _) in peaks.items():
        lines += ["", f"{side}: {peak / 2**20:,.0f} MiB in use at the step's peak (above the step's start); largest:",
                  "", "| MiB allocated | op | MiB requested |", "|---:|---|---:|"]
        lines += [f"| {size / 2**20:,.1f} | {op} | {requested} |"
                  for (op, requested), size in totals[side].most_common(top)]
    sides = list(peaks)
    if len(sides) == 2:
        first, second = sides
        difference = totals[first].copy()
        difference.subtract(totals[second])
        lines += ["", f"live at the peak: {first} minus {second} (op, shape), largest differences:", "",
                  "| MiB allocated | op | MiB requested |", "|---:|---|---:|"]
        ranked = sorted(difference.items(), key=lambda item: -abs(item[1]))[:top]
        lines += [f"| {size / 2**20:+,.1f} | {op} | {requested} |" for (op, requested), size in ranked if size]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_memory_trace", description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=85742)
    parser.add_argument("--backbone", default="resnet50v2")
    parser.add_argument("--loss", default="softmax")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)

    from benchmarks.reference import one_hot
    from benchmarks.throughput import build_ours, build_spec_reference, random_batch, train_steps

    images, labels = random_batch(args.classes)
    peaks = {}
    with tempfile.TemporaryDirectory(prefix="step-trace-") as log_root:
        for side, build, side_labels in (("ours", build_ours, labels),
                                         ("reference", build_spec_reference, one_hot(labels, args.classes))):
            model = build(args.backbone, args.loss, args.classes)
            train_steps(model, images, side_labels, args.warmup)
            path, allocator_peak = trace_one_step(model, images, side_labels, os.path.join(log_root, side))
            events = allocation_events(path)
            peaks[side] = live_at_peak(events)
            print(f"{side}: peak over the step {peaks[side][0] / 2**20:,.0f} MiB allocated (trace), "
                  f"{allocator_peak / 2**20:,.0f} MiB (allocator's statistics), "
                  f"{live_at_peak(events, 'requested')[0] / 2**20:,.0f} MiB requested by the ops (trace)", flush=True)
    print(f"{args.backbone}, {args.loss}, {args.classes:,} classes, batch {len(labels)}")
    print(format_comparison(peaks))


if __name__ == "__main__":
    main()
