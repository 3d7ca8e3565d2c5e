"""A quiet console: TensorFlow's C++ log lines hidden and nothing else lost; text fields kept as typed; notes on margins."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from recipes.commands.cli import main
from recipes.commands.console import (QuietImport, TENSORFLOW_LOG_LINE, asks_for_tensorflow_logs, quiet_tensorflow,
                                      without_tensorflow_logs)
from recipes.commands.typed_text import keep_typed_text

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# As TensorFlow 2.21 prints them on this kind of machine, and as older versions print them.
LOG_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796541039.209671   12799 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "I0000 00:00:1796541039.209939   12799 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "E0000 00:00:1796541052.058454   13260 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed "
    "call to cuInit: UNKNOWN ERROR (303)",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.",
    "2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
]
OUR_LINES = ["error: --data='x' does not exist", "skipping unreadable image a.jpg: empty file (0 bytes)",
             "warning: I0000 is not a log line here", "E0000"]


def test_tensorflow_log_lines_are_recognised_and_nothing_else():
    assert all(TENSORFLOW_LOG_LINE.match(line) for line in LOG_LINES)
    assert not any(TENSORFLOW_LOG_LINE.match(line) for line in OUR_LINES)
    mixed = "\n".join(LOG_LINES[:2] + OUR_LINES[:1] + LOG_LINES[2:] + OUR_LINES[1:]) + "\n"
    assert without_tensorflow_logs(mixed) == "\n".join(OUR_LINES) + "\n"


def test_the_user_keeps_the_logs_with_their_own_level_or_verbose_2():
    environ = {}
    assert quiet_tensorflow(["data_stats", "--data=x"], environ) and environ == {"TF_CPP_MIN_LOG_LEVEL": "3"}
    environ = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    assert not quiet_tensorflow(["list"], environ) and environ == {"TF_CPP_MIN_LOG_LEVEL": "0"}
    for argv in (["run", "arcface", "--verbose=2"], ["run", "arcface", "--verbose", "2"]):
        environ = {}
        assert asks_for_tensorflow_logs(argv) and not quiet_tensorflow(argv, environ) and environ == {}
    assert not asks_for_tensorflow_logs(["run", "arcface", "--verbose=1", "--epochs", "2"])


def test_a_quiet_import_drops_the_log_lines_and_keeps_everything_else(tmp_path, monkeypatch, capfd):
    """What a module writes to file descriptor 2 while it imports (as TensorFlow's C++ code does) is caught."""
    name = "noisy_module_for_quiet_import"
    written = "\n".join([LOG_LINES[0], OUR_LINES[0], LOG_LINES[1], LOG_LINES[3]]) + "\n"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(f"""
        import os, sys
        os.write(2, {written!r}.encode())
        sys.stderr.write("a Python warning\\n")
        VALUE = 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", [QuietImport(name), *sys.meta_path])
    try:
        module = __import__(name)
    finally:
        sys.modules.pop(name, None)
    assert module.VALUE == 42 and not any(isinstance(finder, QuietImport) for finder in sys.meta_path)
    assert sorted(capfd.readouterr().err.splitlines()) == sorted([OUR_LINES[0], "a Python warning"])


@pytest.mark.slow
def test_tensorflow_imported_after_quiet_tensorflow_prints_no_log_line():
    """In a fresh process: TensorFlow's start-up lines (counted as they are dropped) never reach stderr."""
    script = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("console", {os.path.join(ROOT, "recipes", "commands",
                                                                                "console.py")!r})
        console = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(console)
        dropped = []
        filter_lines = console.without_tensorflow_logs
        console.without_tensorflow_logs = lambda text: dropped.append(text) or filter_lines(text)
        assert console.quiet_tensorflow([])
        print("ours before", file=sys.stderr)
        import tensorflow as tf
        print(int(tf.reduce_sum(tf.ones(3))), sum(bool(console.TENSORFLOW_LOG_LINE.match(line))
                                                  for text in dropped for line in text.splitlines()))
    """)
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    total, dropped = map(int, result.stdout.split())
    assert total == 3 and dropped >= 1  # TensorFlow did print its lines, and they were dropped
    assert result.stderr == "ours before\n", result.stderr


# Exits with 3 as soon as importing the command line starts to import TensorFlow (cheap: TensorFlow is not loaded).
IMPORTS_TENSORFLOW = textwrap.dedent("""
    import sys
    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow":
                sys.exit(3)
    sys.meta_path.insert(0, Refuse())
    import recipes.commands.cli
""")


@pytest.mark.slow
def test_the_command_line_prints_no_tensorflow_log_line(tiny_faces):
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    probe = subprocess.run([sys.executable, "-c", IMPORTS_TENSORFLOW], capture_output=True, text=True, cwd=ROOT,
                           env=environment, timeout=300)
    if probe.returncode == 3:
        pytest.skip("importing the command line imports TensorFlow before main() can hide its lines "
                    "(the lazy command line of issue 24 imports it later)")
    for args in (["list"], ["data_stats", f"--data={tiny_faces.train_dir}"]):
        result = subprocess.run([sys.executable, "-m", "recipes", *args], capture_output=True, text=True, cwd=ROOT,
                                env=environment, timeout=300)
        assert result.returncode == 0, result.stderr
        assert not [line for line in result.stderr.splitlines() if TENSORFLOW_LOG_LINE.match(line)], result.stderr
        assert "oneDNN" not in result.stderr and "cuda" not in result.stderr.lower()
        assert result.stdout.strip()


def test_text_fields_keep_what_was_typed(capsys):
    argv = ["run", "arcface", "--wandb_group=1e3", "--epochs=3", "--tags", "[a,1e3]", "--data", "--resume",
            "--loss_args.margin2=0.5"]
    assert keep_typed_text(argv) == ["run", "arcface", "--wandb_group='1e3'", "--epochs=3", "--tags", "'[a,1e3]'",
                                     "--data", "--resume", "--loss_args.margin2=0.5"]
    assert keep_typed_text(["eval", "--model=1e3", "--bins=[a]"]) == ["eval", "--model=1e3", "--bins=[a]"]
    main(["show", "softmax", "--wandb_group=1e3", "--run_name=007", "--tags=[a,1e3]", "--eval_bins=x.bin",
          "--data=None", "--epochs=3", "--lr=1e-2"])
    shown = json.loads(capsys.readouterr().out)
    assert shown["wandb_group"] == "1e3" and shown["run_name"] == "007" and shown["tags"] == ["a", "1e3"]
    assert shown["eval_bins"] == ["x.bin"] and shown["data"] is None and shown["epochs"] == 3 and shown["lr"] == 0.01


def test_list_and_show_say_the_default_margins_are_the_seeds(capsys):
    main(["list"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("arcface ")]
    assert len(lines) == 2  # the loss and the recipe
    assert all("(0.9, 0.4, 0.15)" in line and "--loss_args.preset=arcface" in line for line in lines)
    main(["show", "arcface"])
    shown = capsys.readouterr()
    assert json.loads(shown.out)["loss_args"]["preset"] == "spec"
    assert "note: the margins (m1, m2, m3) = (0.9, 0.4, 0.15)" in shown.err and "--loss_args.preset=arcface" in shown.err
    for preset, margins in (("arcface", [1.0, 0.0, 0.5]), ("sphereface", [1.35, 0.0, 0.0]), ("combined", [1.0, 0.2, 0.3])):
        main(["show", "arcface", f"--loss_args.preset={preset}"])
        shown = capsys.readouterr()
        loss_args = json.loads(shown.out)["loss_args"]
        assert [loss_args[f"margin{index}"] for index in (1, 2, 3)] == margins and "note:" not in shown.err
