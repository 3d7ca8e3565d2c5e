"""`python -m benchmarks [--quick] [--real=DIR] [--out=benchmarks/REPORT.md]`: every benchmark, one report
(`python -m benchmarks --gpu`: the GPU benchmark, `benchmarks/gpu.py`).

Sections: peak FLOP/s of a large matmul; start-up of the command line beside `import tensorflow`; `.bin`
evaluation and data pipeline; training throughput ours vs reference (tiny, mobilenetv2, resnet50v2; softmax,
center_arcface);
head scaling (1k, 10k, 85,742 classes, resnet50v2); accuracy of the recipes on the
synthetic default (and on real faces with --real). Sized to finish in under 20 minutes on
2 CPU cores. Prints progress, then the markdown report; writes it to --out (full runs: benchmarks/REPORT.md,
the one place the tables live; the README links it).
"""
import argparse
import json
import os
import tempfile
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SECTIONS = ("startup", "evaluation", "recordio", "throughput", "head", "accuracy")
RESULTS_NAME = "face-benchmarks-results.json"
ACCURACY_EPOCHS = 10
REAL_EPOCHS = 15
REAL_BATCH_SIZE = 32


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--gpu" in argv:
        from benchmarks.gpu import main as gpu_main

        return gpu_main([arg for arg in argv if arg != "--gpu"])
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps of everything: a smoke test, not numbers")
    parser.add_argument("--real", metavar="DIR",
                        help="also train/evaluate on real aligned faces DIR/<identity>/<image>")
    parser.add_argument("--out", help="where to write the report (default: benchmarks/REPORT.md; none with --quick)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--render", metavar="JSON", help="measure nothing: re-render the report from the results "
                        f"JSON a run saved (default location: {os.path.join('<tmp>', RESULTS_NAME)})")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"--only: unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}.")
    if args.real and not os.path.isdir(args.real):
        parser.error(f"--real={args.real!r} is not a folder; expected DIR/<identity>/<image>.jpg|png.")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args.out or (None if args.quick else os.path.join(root, "benchmarks", "REPORT.md"))

    started = time.perf_counter()

    def progress(message):
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    from benchmarks import report

    if args.render:
        with open(args.render) as file:
            results = json.load(file)
        _publish(report, report.build_report(results), out, progress)
        return 0
    from benchmarks.throughput import load_average, machine_description, matmul_peak_flops

    machine = machine_description()
    machine["load_start"] = machine.pop("load")
    results = {"machine": machine, "quick": args.quick, "arguments": _argument_text(argv)}
    progress(f"machine: {report.machine_line(machine)}")
    peak = matmul_peak_flops()
    progress(f"matmul peak {peak / 1e9:.0f} GFLOP/s")

    if "startup" in only:
        from benchmarks.startup import run_startup

        progress("start-up of --help, list, show beside `python -c \"import tensorflow\"`")
        results["startup"] = run_startup(repeats=1 if args.quick else 5, progress=progress)
    from data.synthetic import default_synthetic_root, make_synthetic_dataset

    synthetic = make_synthetic_dataset(default_synthetic_root(), seed=0)
    if "evaluation" in only:
        from benchmarks.evaluation import run_evaluation, run_pipeline

        progress("evaluation: .bin with flip, ours vs one predict pass vs the spec's loop")
        results["evaluation"] = run_evaluation(synthetic.bin_path, "tiny", 12000, repeats=2, quick=args.quick,
                                               progress=progress)
        progress("data pipeline vs raw decode")
        results["pipeline"] = run_pipeline(synthetic.train_dir, quick=args.quick)
        for name, rate, _ in results["pipeline"]["rows"]:
            progress(f"  {name}: {rate:,.0f} images/s")
    if "recordio" in only:
        from benchmarks.recordio import run_index_scale, run_rec_vs_folder

        progress("RecordIO: train.rec vs the same images as a folder; a generated large index")
        results["recordio"] = {"throughput": run_rec_vs_folder(synthetic.train_dir, quick=args.quick),
                               "index": run_index_scale(10_000 if args.quick else 1_000_000)}
        progress(f"  rec/folder {results['recordio']['throughput']['ratio']:.2f}x; index load "
                 f"{results['recordio']['index']['load_seconds']:.2f} s")
    if "throughput" in only:
        from benchmarks.throughput import run_throughput

        progress("training throughput, ours vs reference")
        results["throughput"] = run_throughput(("tiny",) if args.quick else ("tiny", "mobilenetv2", "resnet50v2"),
                                               quick=args.quick, progress=progress)
    if "head" in only:
        from benchmarks.head_scaling import run_head_scaling

        progress("head scaling (all class counts in one subprocess, in turns)")
        results["head_scaling"] = run_head_scaling(backbone="tiny" if args.quick else "resnet50v2", quick=args.quick,
                                                   progress=progress)
    if "accuracy" in only:
        from benchmarks.accuracy import TRAINING_SETTINGS, run_accuracy, run_real_accuracy

        epochs = 1 if args.quick else ACCURACY_EPOCHS
        settings = ", ".join(f"{key} {value}" for key, value in TRAINING_SETTINGS.items() if key != "seed")
        results["accuracy_settings"] = f"{settings}, {epochs} epochs"
        progress(f"accuracy of the recipes on the synthetic default ({epochs} epochs each)")
        results["accuracy"] = run_accuracy(epochs, progress=progress)
        if args.real:
            real_epochs = 1 if args.quick else REAL_EPOCHS
            progress(f"accuracy on real faces under {args.real} ({real_epochs} epochs each)")
            results["real_accuracy"], results["real_facts"] = run_real_accuracy(
                args.real, real_epochs, batch_size=REAL_BATCH_SIZE, progress=progress)
            results["real_name"] = os.path.basename(os.path.normpath(args.real))
            results["real_epochs"], results["real_batch_size"] = real_epochs, REAL_BATCH_SIZE
    results["peak_flops"] = max(peak, matmul_peak_flops())
    machine["load_end"] = load_average()
    results["seconds"] = time.perf_counter() - started
    saved = os.path.join(tempfile.gettempdir(), RESULTS_NAME)
    with open(saved, "w") as file:
        json.dump(results, file, default=float)
    progress(f"raw results saved to {saved} (re-render with --render={saved})")
    _publish(report, report.build_report(results), out, progress)
    progress(f"total {results['seconds'] / 60:.1f} minutes")
    return 0


def _publish(report, text, out, progress):
    """Print the report and write it to `out` (if any)."""
    print(text, flush=True)
    if not out:
        return
    if os.path.exists(out):
        with open(out) as file:
            text = report.with_separate_sections(text, file.read())
    with open(out, "w") as file:
        file.write(text)
    progress(f"report written to {os.path.relpath(out)}")


def _argument_text(argv):
    """The command-line arguments as shown in the report (a --real path by its folder name only)."""
    shown, previous = [], None
    for argument in (sys.argv[1:] if argv is None else argv):
        if argument.startswith("--real=") or previous == "--real":
            prefix = "--real=" if argument.startswith("--real=") else ""
            argument = prefix + os.path.basename(os.path.normpath(argument.removeprefix("--real="))) + "/"
        previous = argument
        if argument.startswith("--out") or previous == "--out":
            continue
        shown.append(argument)
    return "".join(" " + argument for argument in shown)


if __name__ == "__main__":
    sys.exit(main())
