"""Start-up of the command line where it computes nothing, beside `python -c "import tensorflow"` in the same run.

    python -m benchmarks.startup [--repeats=5]

Each command runs in a fresh interpreter from the project root (`python -m recipes ...`, output discarded);
its wall time (median of the repeats) and peak resident memory (the interpreter's own VmHWM, which counts from
its start whatever the size of the process that launched it) are compared with a bare TensorFlow import
measured in the same run. Goal: each ≤ 0.25 × the TensorFlow import.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STARTUP_GOAL = 0.25  # × the time of `python -c "import tensorflow"`
COMMANDS = (  # (name, python arguments, exit code)
    ("--help", ["-m", "recipes", "--help"], 0),
    ("list", ["-m", "recipes", "list"], 0),
    ("show arcface", ["-m", "recipes", "show", "arcface"], 0),
    ("run arcface --help", ["-m", "recipes", "run", "arcface", "--help"], 0),
    ("run softmax --epohcs=3 (did-you-mean)", ["-m", "recipes", "run", "softmax", "--epohcs=3"], 2),
)
TENSORFLOW = ('python -c "import tensorflow"', ["-c", "import tensorflow"], 0)
PEAK_MARK = "peak-rss-kib:"
# `python -m MODULE ARGS` or `python -c CODE`, run by this launcher, which prints the interpreter's peak RSS
# (VmHWM of /proc/self/status, in KiB) as the last line on stderr when it exits.
LAUNCHER = f"""
import atexit, runpy, sys

def report_peak():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print("{PEAK_MARK}" + peak, file=sys.stderr, flush=True)

atexit.register(report_peak)
option, target, *arguments = sys.argv[1:]
sys.argv = [target, *arguments]
if option == "-m":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    exec(compile(target, "<string>", "exec"), {{"__name__": "__main__"}})
"""


def run_once(arguments, exit_code):
    """(wall seconds, peak RSS bytes or None without /proc) of `python ARGUMENTS` run from the project root;
    RuntimeError unless it exits with `exit_code`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", LAUNCHER, *arguments], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    seconds = time.perf_counter() - started
    if result.returncode != exit_code:
        raise RuntimeError(f"python {' '.join(arguments)} exited with {result.returncode}, not {exit_code}: "
                           f"{result.stderr[-2000:]}")
    peaks = [line[len(PEAK_MARK):] for line in result.stderr.splitlines() if line.startswith(PEAK_MARK)]
    return seconds, int(peaks[-1]) * 1024 if peaks else None


def measure(arguments, exit_code, repeats):
    """{"seconds": median wall time, "peak_rss_bytes": largest peak RSS, "all_seconds"} of `repeats` runs."""
    runs = [run_once(arguments, exit_code) for _ in range(repeats)]
    peaks = [rss for _, rss in runs if rss is not None]
    return {"seconds": statistics.median(seconds for seconds, _ in runs), "peak_rss_bytes": max(peaks, default=None),
            "all_seconds": [seconds for seconds, _ in runs]}


def run_startup(repeats=5, progress=print):
    """{"tensorflow": measure of the bare import, "rows": [{"command", "seconds", "peak_rss_bytes", "ratio"}]}.

    The TensorFlow import is measured before and after the commands (the median of all its runs), so a
    change of the machine's load during the run moves both sides.
    """
    tensorflow = measure(*TENSORFLOW[1:], 1)
    rows = []
    for name, arguments, exit_code in COMMANDS:
        row = {"command": name, **measure(arguments, exit_code, repeats)}
        rows.append(row)
        progress(f"  {name}: {row['seconds']:.2f} s, {_mib(row['peak_rss_bytes'])} MiB")
    later = measure(*TENSORFLOW[1:], max(1, repeats - 1))
    tensorflow["seconds"] = statistics.median([tensorflow["seconds"]] + later["all_seconds"])
    peaks = [peak for peak in (tensorflow["peak_rss_bytes"], later["peak_rss_bytes"]) if peak is not None]
    tensorflow["peak_rss_bytes"] = max(peaks, default=None)
    progress(f"  {TENSORFLOW[0]}: {tensorflow['seconds']:.2f} s, {_mib(tensorflow['peak_rss_bytes'])} MiB")
    for row in rows:
        row["ratio"] = row["seconds"] / tensorflow["seconds"]
    return {"tensorflow": {"command": TENSORFLOW[0], **tensorflow}, "rows": rows, "repeats": repeats}


def _mib(value):
    return "n/a" if value is None else f"{value / 2**20:,.0f}"


def startup_table(result):
    """Markdown table of `run_startup`'s result, with the goal column."""
    header = ("| command | seconds | × `import tensorflow` | peak RSS MiB | goal ≤ 0.25× met? |\n"
              "|---|---|---|---|---|")
    lines = [f"| `{row['command']}` | {row['seconds']:.2f} | {row['ratio']:.3f} | {_mib(row['peak_rss_bytes'])} | "
             f"{'yes' if row['ratio'] <= STARTUP_GOAL else '**no**'} |" for row in result["rows"]]
    tensorflow = result["tensorflow"]
    lines.append(f"| `{tensorflow['command']}` | {tensorflow['seconds']:.2f} | 1 | "
                 f"{_mib(tensorflow['peak_rss_bytes'])} | (reference) |")
    return "\n".join([header, *lines])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (the median is reported)")
    args = parser.parse_args(argv)
    print(startup_table(run_startup(args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
