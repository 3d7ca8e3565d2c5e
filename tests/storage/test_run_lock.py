"""Issue 27, case 1: one writer per run folder. A second writer is refused in one line naming the holder; the OS
drops the lock of a killed holder; two resumes started at once train once, with history epochs in order."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from recipes.commands.cli import main
from storage.history import read_history
from storage.run_lock import RunLocked, lock_run_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from storage.run_lock import lock_run_folder
    lock_run_folder(sys.argv[1])
    print("locked", flush=True)
    time.sleep(600)
""")


def history_epochs(run_dir):
    return [row["epoch"] for row in read_history(os.path.join(run_dir, "history.jsonl"))]


def folder_state(run_dir):
    """{relative path: bytes} of every file of the run folder but its lock file."""
    state = {}
    for folder, _, files in os.walk(run_dir):
        for name in files:
            path = os.path.join(folder, name)
            if name != "writer.lock":
                state[os.path.relpath(path, run_dir)] = open(path, "rb").read()
    return state


def test_a_lock_is_exclusive_until_released(tmp_path):
    with lock_run_folder(tmp_path):
        with pytest.raises(RunLocked, match=f"is being written by another process \\(pid {os.getpid()} on .*, started "):
            lock_run_folder(tmp_path)
    lock_run_folder(tmp_path).release()


WAIT_PLUGIN = textwrap.dedent('''
    import os, time
    import keras
    from registry import CALLBACKS

    class WaitForGo(keras.callbacks.Callback):
        """Holds the run (and so its lock) at the start of training until the file GO exists."""

        def on_train_begin(self, logs=None):
            deadline = time.monotonic() + 300
            while not os.path.exists({go!r}) and time.monotonic() < deadline:
                time.sleep(0.05)

    CALLBACKS.register("wait_for_go", lambda context: WaitForGo())
''')


@pytest.mark.slow
def test_a_second_writer_is_refused_a_killed_holder_blocks_nothing_and_two_resumes_train_once(softmax_run_copy,
                                                                                                tmp_path, capsys):
    run_dir = softmax_run_copy
    # a holder in another process: a resume is refused in one line naming it, and changes nothing
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, run_dir], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = folder_state(run_dir)
        capsys.readouterr()
        with pytest.raises(SystemExit) as stopped:
            main(["run", "softmax", f"--resume={run_dir}", "--epochs=2"])
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and err.count("\n") == 1
        assert err.startswith(f"error: run folder {run_dir!r} is being written by another process (pid {holder.pid} "
                              "on ")
        assert ", started 20" in err and "Wait until it ends or stop it" in err
        assert folder_state(run_dir) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    assert holder.returncode == -signal.SIGKILL
    # the killed holder left no lock: of two resumes started at once, one trains and the other is refused
    plugin = tmp_path / "wait_for_go.py"
    plugin.write_text(WAIT_PLUGIN.format(go=str(tmp_path / "go")))
    command = [sys.executable, "-m", "recipes", "run", "softmax", f"--resume={run_dir}", "--epochs=2",
               f"--plugins=[{plugin}]", "--callbacks=+wait_for_go"]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = [subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    try:
        while all(process.poll() is None for process in started):
            time.sleep(0.2)
        refused = next(process for process in started if process.returncode is not None)
        writer = next(process for process in started if process is not refused)
        err = refused.stderr.read()
        assert refused.returncode == 2, err[-3000:]
        assert f"is being written by another process (pid {writer.pid} on " in err
        assert [line for line in err.splitlines() if line.startswith("error:")] == err.strip().splitlines()[-1:]
        (tmp_path / "go").write_text("")
        out, writer_err = writer.communicate(timeout=600)
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
    assert writer.returncode == 0, writer_err[-3000:]
    assert "resuming after epoch 1" in out and f"done: {run_dir}" in out
    assert history_epochs(run_dir) == [0, 1, 2]  # row 0: the untrained model
    assert json.loads(open(os.path.join(run_dir, "writer.lock")).read())["pid"] == writer.pid
