"""Start-up of the command line where it computes nothing, beside `python -c "import tensorflow"` in the same run.

    python -m benchmarks.startup [--repeats=5]

Each command runs in a fresh interpreter from the project root (`python -m recipes ...`, output discarded);
its wall time (median of the repeats) and peak resident memory (the child's `ru_maxrss`, from `os.wait4`) are
compared with a bare TensorFlow import measured in the same run. Goal: each ≤ 0.25 × the TensorFlow import.
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


def run_once(arguments, exit_code):
    """(wall seconds, peak RSS bytes) of `python ARGUMENTS` run from the project root; RuntimeError unless it
    exits with `exit_code`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, *arguments], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)  # the child's own resource usage, unlike Popen.wait
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if process.returncode != exit_code:
        raise RuntimeError(f"python {' '.join(arguments)} exited with {process.returncode}, not {exit_code}: "
                           f"{errors[-2000:]}")
    return seconds, usage.ru_maxrss * 1024  # Linux: kilobytes


def measure(arguments, exit_code, repeats):
    """{"seconds": median wall time, "peak_rss_bytes": largest peak RSS, "all_seconds"} of `repeats` runs."""
    runs = [run_once(arguments, exit_code) for _ in range(repeats)]
    return {"seconds": statistics.median(seconds for seconds, _ in runs), "peak_rss_bytes": max(rss for _, rss in runs),
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
        progress(f"  {name}: {row['seconds']:.2f} s, {row['peak_rss_bytes'] / 2**20:.0f} MiB")
    later = measure(*TENSORFLOW[1:], max(1, repeats - 1))
    tensorflow["seconds"] = statistics.median([tensorflow["seconds"]] + later["all_seconds"])
    tensorflow["peak_rss_bytes"] = max(tensorflow["peak_rss_bytes"], later["peak_rss_bytes"])
    progress(f"  {TENSORFLOW[0]}: {tensorflow['seconds']:.2f} s, {tensorflow['peak_rss_bytes'] / 2**20:.0f} MiB")
    for row in rows:
        row["ratio"] = row["seconds"] / tensorflow["seconds"]
    return {"tensorflow": {"command": TENSORFLOW[0], **tensorflow}, "rows": rows, "repeats": repeats}


def startup_table(result):
    """Markdown table of `run_startup`'s result, with the goal column."""
    header = "| command | seconds | × `import tensorflow` | peak RSS MiB | goal ≤ 0.25× met? |\n|---|---|---|---|---|"
    lines = [f"| `{row['command']}` | {row['seconds']:.2f} | {row['ratio']:.3f} | {row['peak_rss_bytes'] / 2**20:,.0f} | "
             f"{'yes' if row['ratio'] <= STARTUP_GOAL else '**no**'} |" for row in result["rows"]]
    tensorflow = result["tensorflow"]
    lines.append(f"| `{tensorflow['command']}` | {tensorflow['seconds']:.2f} | 1 | "
                 f"{tensorflow['peak_rss_bytes'] / 2**20:,.0f} | (reference) |")
    return "\n".join([header, *lines])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (the median is reported)")
    args = parser.parse_args(argv)
    print(startup_table(run_startup(args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
