"""The command line answers what needs no computation (`--help`, `list`, `show`, argument and did-you-mean errors)
without importing TensorFlow or Keras: checked in one fresh interpreter, command by command."""
import json
import os
import subprocess
import sys

import pytest

from recipes.optimizer_table import manifest_fits_installed_keras

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HEAVY = ("tensorflow", "keras")

# Runs each command line given as a JSON argument through the CLI's `main`; after each, one JSON line on
# stderr: its exit code and which of HEAVY are imported by then.
RUN_EACH = f"""
import json, sys
from recipes.commands.cli import main
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
        code = 0
    except SystemExit as stop:
        code = stop.code
    print("RESULT " + json.dumps({{"code": code, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}),
          file=sys.stderr, flush=True)
    print("END", flush=True)
"""

COMMANDS = [  # (argv, exit code, expected in the output)
    (["list"], 0, "\nlosses ("),
    (["show", "arcface"], 0, '"margin1": 0.9'),
    (["show", "cosface", "--loss_args.scale=32"], 0, '"margin2": 0.35'),
    (["--help"], 0, "usage: python -m recipes"),
    (["run", "arcface", "--help"], 0, "fields of recipe 'arcface'"),
    (["show", "--help"], 0, "python -m recipes show"),
    (["eval", "--help"], 0, "python -m recipes eval"),
    (["run", "softmax", "--epohcs=3"], 2, "Did you mean 'epochs'"),
    (["run", "softmax", "--backbone=tinny"], 2, "Did you mean 'tiny'"),
    (["show", "softmax", "--loss=arcfce"], 2, "Did you mean 'arcface'"),
    (["run", "arcface", "--loss_args.scael=3"], 2, "Did you mean 'scale'"),
    (["run", "softmax", "--epochs=three"], 2, "--epochs='three'"),
    (["run", "softmax", "--optimizer=adamm"], 2, "Did you mean 'adam'"),
    (["run", "arcface", "--loss_args.preset=arcfce"], 2, "--loss_args.preset='arcfce' is not a margin preset"),
    (["run", "arcface", "--callbacks=+early_stopping", "--callback_args.early_stopping.patience=-3"], 2,
     "--callback_args.early_stopping.patience=-3 must be an integer >= 0"),
    (["run", "center_softmax", "--center_factor=0.5"], 2, "which has a center loss already"),
]


@pytest.mark.skipif(not manifest_fits_installed_keras(), reason="with another Keras than registry/manifest.py's, "
                    "the optimizers' options are read from Keras itself")
def test_help_list_show_and_argument_errors_import_no_tensorflow(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run([sys.executable, "-c", RUN_EACH, json.dumps([argv for argv, _, _ in COMMANDS])],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    outputs = result.stdout.split("END\n")
    results = [json.loads(line[len("RESULT "):]) for line in result.stderr.splitlines() if line.startswith("RESULT ")]
    assert len(results) == len(COMMANDS), result.stderr[-3000:]
    for (argv, code, expected), output, outcome in zip(COMMANDS, outputs, results):
        assert outcome == {"code": code, "heavy": []}, (argv, outcome)
        assert expected in (output if code == 0 else result.stderr), (argv, output[-500:])
    assert os.listdir(tmp_path) == []
