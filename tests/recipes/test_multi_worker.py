"""Two worker processes on 127.0.0.1 train with MultiWorkerMirroredStrategy through TF_CONFIG."""
import glob
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile

import h5py
import numpy as np
import pytest

import recipes.train  # noqa: F401  (registers the training model's classes for load_model)
from recipes.commands.cli import main
from storage.checkpoints import list_checkpoints
from storage.history import read_history
from storage.model_files import load_model_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def run_args(tiny_faces, runs_dir, epochs, *extra, data=None):
    """The command-line arguments of a tiny center_softmax run on `tiny_faces` (`extra` arguments last)."""
    return ["run", "center_softmax", "--backbone=tiny", "--embedding_size=16", f"--epochs={epochs}",
            f"--data={data or tiny_faces.train_dir}", f"--eval_bins=[{tiny_faces.bin_path}]", f"--runs_dir={runs_dir}",
            "--verbose=0", *extra]


def launch_workers(tiny_faces, runs_dir, epochs, *extra, data=None):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "recipes",
             *run_args(tiny_faces, runs_dir, epochs, "--batch_size=8", "--strategy=multi_worker", *extra, data=data)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return workers


def finish(workers, timeout=300):
    return [(worker.wait(timeout=timeout), worker.stdout.read(), worker.stderr.read()) for worker in workers]


@pytest.mark.slow
def test_two_workers_write_one_run_folder_from_a_recordio_folder_and_recover_after_a_worker_dies(tiny_faces, tmp_path):
    from benchmarks.recordio import write_rec_copy
    from data.folders import scan_identity_folder

    rec = str(tmp_path / "rec")
    write_rec_copy(scan_identity_folder(tiny_faces.train_dir), rec)
    runs_dir = str(tmp_path / "runs")
    workers = launch_workers(tiny_faces, runs_dir, 30, data=rec)
    deadline = time.time() + 300
    while not glob.glob(os.path.join(runs_dir, "*", "checkpoints", "epoch-0001")) and time.time() < deadline:
        time.sleep(0.05)
    workers[1].send_signal(signal.SIGKILL)
    code, out, err = finish(workers[:1])[0]
    assert code == 4, err[-3000:]
    assert "global batch 16 = 8 per replica x 2" in out
    assert "a worker of the cluster failed or became unreachable" in err and "--resume=" in err
    (run_dir,) = glob.glob(os.path.join(runs_dir, "*"))
    done = list_checkpoints(run_dir)[-1][0]
    assert 1 <= done < 30

    for code, out, err in finish(launch_workers(tiny_faces, runs_dir, done + 1, f"--resume={run_dir}", data=rec)):
        assert code == 0, err[-3000:]
    assert list_checkpoints(run_dir)[-1][0] == done + 1
    assert [row["epoch"] for row in read_history(os.path.join(run_dir, "history.jsonl"))] == list(range(0, done + 2))
    with open(os.path.join(run_dir, "recipe.json")) as file:
        stored = json.load(file)
    assert (stored["num_images"], stored["num_classes"], stored["replicas"]) == (64, 8, 2)


HEAD_ENTRY = "head/vars"  # where the FaceTrainingModel's head stores its entries in a .keras file's weights
PARTIAL_FC = ("--head=partial_fc", "--deterministic=true")


def stored_head(keras_file):
    """{name: numpy array} the partial_fc head stored in `keras_file`: 'kernel' and 'optimizer_<i>'."""
    with zipfile.ZipFile(keras_file) as archive:
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
            return {name: value[()] for name, value in weights[HEAD_ENTRY].items()}


@pytest.mark.slow
def test_two_workers_checkpoint_partial_fc_as_one_matrix_that_one_process_resumes(tiny_faces, tmp_path, monkeypatch,
                                                                                 capsys, op_determinism):
    worker_temp = tmp_path / "worker_temp"  # the workers' temporary run folders
    worker_temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(worker_temp))
    runs_dir = str(tmp_path / "runs")
    for code, out, err in finish(launch_workers(tiny_faces, runs_dir, 1, *PARTIAL_FC)):
        assert code == 0, err[-3000:]
    assert os.listdir(worker_temp) == []
    (run_dir,) = glob.glob(os.path.join(runs_dir, "*"))
    ((epoch, checkpoint),) = list_checkpoints(run_dir)
    assert epoch == 1
    stored = stored_head(os.path.join(checkpoint, "model.keras"))
    slots = [name for name, value in stored.items() if name != "kernel" and value.ndim == 2]
    assert stored["kernel"].shape == (16, 8) and len(slots) == 2  # (d, C) from 4 classes per worker; adamax: m, u
    assert all(stored[name].shape == (16, 8) for name in slots)

    main(run_args(tiny_faces, str(tmp_path / "mirrored"), 1, "--batch_size=8", "--strategy=mirrored",
                  "--cpu_replicas=2", *PARTIAL_FC))  # one process (this one) on two logical CPUs
    (mirrored_run,) = glob.glob(str(tmp_path / "mirrored" / "*"))
    one_machine = stored_head(os.path.join(list_checkpoints(mirrored_run)[-1][1], "model.keras"))
    for name, value in stored.items():  # each worker's shard gathered into its place
        np.testing.assert_allclose(value, one_machine[name], rtol=1e-5, atol=1e-6, err_msg=name)  # float32 sums in another order

    head = load_model_file(os.path.join(checkpoint, "model.keras")).head  # one replica, as the resume
    variables = dict(head._sharded_variables())
    for name in ["kernel", *slots]:
        np.testing.assert_array_equal(head.logical(variables[name]), stored[name])

    capsys.readouterr()
    main(run_args(tiny_faces, runs_dir, 2, "--batch_size=16", "--strategy=auto", f"--resume={run_dir}", *PARTIAL_FC))
    resumed = capsys.readouterr().out
    assert "resuming after epoch 1" in resumed and "with 1 replica(s)" in resumed
    assert [epoch for epoch, _ in list_checkpoints(run_dir)] == [1, 2]
    assert [row["epoch"] for row in read_history(os.path.join(run_dir, "history.jsonl"))] == [0, 1, 2]
    assert stored_head(os.path.join(run_dir, "model.keras"))["kernel"].shape == (16, 8)
