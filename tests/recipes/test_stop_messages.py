"""Issue 27, case 4: a stop by SIGTERM says what is true: before the first checkpoint that nothing can be resumed
(and how to start again); after it, a resume command that works."""
import os
import shlex
import signal
import subprocess
import sys
import textwrap

import keras
import pytest

import recipes  # noqa: F401
from recipes.commands.cli import main
from registry import CALLBACKS
from storage.checkpoints import list_checkpoints
from storage.history import read_history

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HOLD_PLUGIN = textwrap.dedent('''
    import time
    import keras
    from registry import CALLBACKS

    class HoldFirstStep(keras.callbacks.Callback):
        """Says 'training' before the first step of epoch 1 and waits there (until a signal ends the run)."""

        def on_train_batch_begin(self, batch, logs=None):
            print("training", flush=True)
            time.sleep(300)

    CALLBACKS.register("hold_first_step", lambda context: HoldFirstStep())
''')


def run_args(tiny_faces, runs_dir, *extra):
    return ["--backbone=tiny", "--embedding_size=16", "--batch_size=16", f"--data={tiny_faces.train_dir}",
            f"--eval_bins=[{tiny_faces.bin_path}]", f"--runs_dir={runs_dir}", "--verbose=0", "--wandb=disabled", *extra]


@pytest.mark.slow
def test_sigterm_before_the_first_checkpoint_says_nothing_can_be_resumed(tiny_faces, tmp_path):
    plugin = tmp_path / "hold_first_step.py"
    plugin.write_text(HOLD_PLUGIN)
    runs_dir = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, "-m", "recipes", "run", "softmax", *run_args(tiny_faces, runs_dir, "--epochs=2"),
         f"--plugins=[{plugin}]", "--callbacks=+hold_first_step"],
        cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        for line in process.stdout:
            if line.strip() == "training":
                break
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    (run_dir,) = [str(path) for path in runs_dir.iterdir()]
    assert process.returncode == 130, err[-3000:]
    (stopped,) = [line for line in err.splitlines() if line.startswith("stopped:")]
    assert stopped == (f"stopped: interrupted. No epoch finished, so {run_dir} holds no checkpoint and nothing can be "
                       f"resumed; start again with: python -m recipes run {run_dir}/recipe.json (and delete {run_dir})")
    assert "--resume" not in err and list_checkpoints(run_dir) == []
    main(["show", f"{run_dir}/recipe.json"])  # the command to start again reads the run's recipe as a recipe file


class SignalDuringEpoch2(keras.callbacks.Callback):
    """Sends this process SIGTERM at the first step of epoch 2, as `kill` would; once."""

    sent = False

    def on_train_batch_begin(self, batch, logs=None):
        if not SignalDuringEpoch2.sent and self.model.optimizer.iterations.numpy() == self.params["steps"]:
            SignalDuringEpoch2.sent = True
            os.kill(os.getpid(), signal.SIGTERM)


CALLBACKS.register("sigterm_during_epoch_2", lambda context: SignalDuringEpoch2())


@pytest.mark.slow
def test_sigterm_after_a_checkpoint_prints_a_resume_command_that_works(tiny_faces, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    SignalDuringEpoch2.sent = False
    with pytest.raises(SystemExit) as stopped:
        main(["run", "softmax", *run_args(tiny_faces, "runs", "--epochs=3"), "--callbacks=+sigterm_during_epoch_2"])
    assert stopped.value.code == 130
    (run_dir,) = [os.path.join("runs", name) for name in os.listdir("runs")]
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stopped:")]
    assert line.startswith(f"stopped: interrupted. The last finished epoch (1) is checkpointed in {run_dir}; "
                           "continue with: python -m recipes run softmax --resume=")
    command = shlex.split(line.split("continue with: ")[1])
    assert command[:3] == ["python", "-m", "recipes"]
    main(command[3:])
    assert f"done: {run_dir}" in capsys.readouterr().out
    assert [row["epoch"] for row in read_history(os.path.join(run_dir, "history.jsonl"))] == [0, 1, 2, 3]


def sigterm_during_the_data_scan(monkeypatch):
    """`load_data` sends this process SIGTERM (as `kill` would) before it scans."""
    import recipes.train

    load_data = recipes.train.load_data

    def killed_while_scanning(recipe):
        os.kill(os.getpid(), signal.SIGTERM)
        return load_data(recipe)

    monkeypatch.setattr(recipes.train, "load_data", killed_while_scanning)


def stopped_line(capsys, argv):
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 130 and signal.getsignal(signal.SIGTERM) is handler
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("stopped:")]
    return line


def test_sigterm_during_the_data_scan_says_nothing_was_trained_and_writes_no_run_folder(tiny_faces, tmp_path,
                                                                                      monkeypatch, capsys):
    sigterm_during_the_data_scan(monkeypatch)
    line = stopped_line(capsys, ["run", "softmax", *run_args(tiny_faces, tmp_path / "runs", "--epochs=1")])
    assert line.startswith("stopped: interrupted while the run was being set up") and "nothing was trained" in line
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_sigterm_while_a_resume_is_set_up_leaves_its_checkpoints_and_says_how_to_continue(softmax_run_copy,
                                                                                        monkeypatch, capsys):
    before = list_checkpoints(softmax_run_copy)
    sigterm_during_the_data_scan(monkeypatch)
    line = stopped_line(capsys, ["run", "softmax", f"--resume={softmax_run_copy}", "--epochs=2"])
    assert line.endswith(f"Continue with: python -m recipes run softmax --resume={softmax_run_copy}")
    assert list_checkpoints(softmax_run_copy) == before
