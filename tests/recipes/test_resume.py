"""Runs killed with SIGKILL (also mid-checkpoint) resume to the same weights; NaN stops cleanly."""
import glob
import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import recipes  # noqa: F401  (registers the classes a saved training model needs)
from recipes.commands.cli import main
from storage.checkpoints import list_checkpoints, read_state
from storage.history import read_history
from storage.model_files import load_model_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPOCHS = 7


def run_args(tiny_faces, runs_dir, *extra):
    """The command-line arguments of a deterministic tiny center_softmax run of EPOCHS epochs on `tiny_faces`."""
    return [
        "run", "center_softmax", "--backbone=tiny", "--embedding_size=16", "--batch_size=16", f"--epochs={EPOCHS}",
        f"--data={tiny_faces.train_dir}", f"--eval_bins=[{tiny_faces.bin_path}]", f"--runs_dir={runs_dir}",
        "--deterministic=true", "--verbose=0", "--dropout=0.2", *extra,
    ]


def command(tiny_faces, runs_dir, *extra):
    return [sys.executable, "-m", "recipes", *run_args(tiny_faces, runs_dir, *extra)]


def launch(args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def final_weights(runs_dir):
    (run_dir,) = glob.glob(os.path.join(runs_dir, "*"))
    return load_model_file(os.path.join(run_dir, "model.keras")).get_weights(), run_dir


def kill_when(process, condition, timeout=120):
    """SIGKILL `process` as soon as `condition()` holds (polled every ms); False if it ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.001)
    process.wait()
    return False


@pytest.fixture(scope="module")
def reference(tiny_faces, tmp_path_factory):
    """The final weights of the uninterrupted run, trained in this process: bit for bit those of a fresh process."""
    from tensorflow.python.framework import config

    runs_dir = tmp_path_factory.mktemp("reference")
    try:
        main(run_args(tiny_faces, str(runs_dir)))
    finally:
        config.disable_op_determinism()  # --deterministic=true turned it on; the next tests start without it
    return final_weights(str(runs_dir))[0]


@pytest.mark.slow
def test_sigkill_at_five_seeded_points_then_resume_matches_an_uninterrupted_run(reference, tiny_faces, tmp_path):
    """Five kills, each placed by its own seed: even seeds while checkpoint k is being written,
    odd seeds at a random moment after checkpoint k is complete (k increases kill by kill).
    `test_a_crash_inside_checkpoint_writing_leaves_the_previous_checkpoint` covers the
    mid-write case deterministically."""
    runs_dir = str(tmp_path / "runs")
    process = launch(command(tiny_faces, runs_dir))
    for seed in range(5):
        rng = random.Random(seed)
        epoch = seed + 2
        if seed % 2 == 0:
            # while checkpoint `epoch` is written (or, if that window is missed, right after it)
            writing = os.path.join(runs_dir, "*", "checkpoints", f".tmp-epoch-{epoch:04d}")
            written = os.path.join(runs_dir, "*", "checkpoints", f"epoch-{epoch:04d}")
            assert kill_when(process, lambda: glob.glob(writing) or glob.glob(written)), process.stderr.read()[-3000:]
        else:
            pattern = os.path.join(runs_dir, "*", "checkpoints", f"epoch-{epoch:04d}")
            delay = rng.uniform(0.0, 1.0)
            seen = []
            assert kill_when(process, lambda: seen or seen.extend(glob.glob(pattern)) or
                             (seen and time.sleep(delay) is None)), process.stderr.read()[-3000:]
        (run_dir,) = glob.glob(os.path.join(runs_dir, "*"))
        for done, path in list_checkpoints(run_dir):
            assert read_state(path)["epoch"] == done
            load_model_file(os.path.join(path, "model.keras"))
        process = launch(command(tiny_faces, runs_dir, "--resume"))
    process.wait()
    assert process.returncode == 0, process.stderr.read()[-3000:]
    weights, run_dir = final_weights(runs_dir)
    assert [row["epoch"] for row in read_history(os.path.join(run_dir, "history.jsonl"))] == list(range(0, EPOCHS + 1))
    for got, want in zip(weights, reference):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_non_finite_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tiny_faces, tmp_path, capsys,
                                                                                 op_determinism):
    runs_dir = str(tmp_path / "runs")
    with pytest.raises(SystemExit) as stopped:
        main(run_args(tiny_faces, runs_dir, "--lr_schedule=step", "--schedule_args.step_epochs=1",
                      "--schedule_args.factor=1e30"))
    err = capsys.readouterr().err
    assert stopped.value.code == 3, err[-3000:]
    assert "non-finite loss" in err and "at epoch 2, step" in err
    (run_dir,) = glob.glob(os.path.join(runs_dir, "*"))
    assert [epoch for epoch, _ in list_checkpoints(run_dir)] == [1]
    model = load_model_file(os.path.join(run_dir, "checkpoints", "epoch-0001", "model.keras"))
    assert all(np.all(np.isfinite(weight)) for weight in model.get_weights())


def test_a_crash_inside_checkpoint_writing_leaves_the_previous_checkpoint(tmp_path):
    from storage.checkpoints import latest_checkpoint, write_checkpoint

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    write_checkpoint(str(tmp_path), model, {"epoch": 1})
    before = model.get_weights()

    class CrashWhileSaving(keras.Sequential):
        def save(self, path, *args, **kwargs):
            with open(path, "wb") as file:
                file.write(b"PK\x03\x04 half a zip")
            raise OSError(28, "No space left on device")

    broken = CrashWhileSaving([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(OSError, match="No space left"):
        write_checkpoint(str(tmp_path), broken, {"epoch": 2})
    assert [epoch for epoch, _ in list_checkpoints(str(tmp_path))] == [1]
    restored = load_model_file(os.path.join(latest_checkpoint(str(tmp_path)), "model.keras"))
    for got, want in zip(restored.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    write_checkpoint(str(tmp_path), model, {"epoch": 2})
    assert [epoch for epoch, _ in list_checkpoints(str(tmp_path))] == [1, 2]
    assert not glob.glob(os.path.join(str(tmp_path), "checkpoints", ".tmp-*"))
