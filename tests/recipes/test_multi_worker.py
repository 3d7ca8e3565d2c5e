"""Two worker processes on 127.0.0.1 train with MultiWorkerMirroredStrategy through TF_CONFIG."""
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

from callbacks.checkpoints import list_checkpoints
from callbacks.run_record import read_history

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def launch_workers(tiny_faces, runs_dir, epochs, *extra, data=None):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "recipes", "run", "center_softmax", "--backbone=tiny", "--embedding_size=16",
             "--batch_size=8", f"--epochs={epochs}", f"--data={data or tiny_faces.train_dir}",
             f"--eval_bins=[{tiny_faces.bin_path}]", f"--runs_dir={runs_dir}", "--strategy=multi_worker",
             "--verbose=0", *extra],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return workers


def finish(workers, timeout=300):
    return [(worker.wait(timeout=timeout), worker.stdout.read(), worker.stderr.read()) for worker in workers]


def test_two_workers_write_one_run_folder_and_recover_after_a_worker_dies(tiny_faces, tmp_path):
    runs_dir = str(tmp_path / "runs")
    results = finish(launch_workers(tiny_faces, runs_dir, epochs=2))
    for code, out, err in results:
        assert code == 0, err[-3000:]
    assert "global batch 16 = 8 per replica x 2" in results[0][1]
    (run_dir,) = glob.glob(os.path.join(runs_dir, "*"))
    assert [epoch for epoch, _ in list_checkpoints(run_dir)] == [1, 2]
    assert [row["epoch"] for row in read_history(os.path.join(run_dir, "history.jsonl"))] == [0, 1, 2]
    with open(os.path.join(run_dir, "recipe.json")) as file:
        assert json.load(file)["replicas"] == 2

    crash_dir = str(tmp_path / "crash")
    workers = launch_workers(tiny_faces, crash_dir, epochs=30)
    deadline = time.time() + 300
    while not glob.glob(os.path.join(crash_dir, "*", "checkpoints", "epoch-0001")) and time.time() < deadline:
        time.sleep(0.05)
    workers[1].send_signal(signal.SIGKILL)
    code, out, err = finish(workers[:1])[0]
    assert code == 4, err[-3000:]
    assert "a worker of the cluster failed or became unreachable" in err and "--resume=" in err
    (crashed_run,) = glob.glob(os.path.join(crash_dir, "*"))
    done = list_checkpoints(crashed_run)[-1][0]
    assert 1 <= done < 30

    results = finish(launch_workers(tiny_faces, crash_dir, done + 1, f"--resume={crashed_run}"))
    for code, out, err in results:
        assert code == 0, err[-3000:]
    assert list_checkpoints(crashed_run)[-1][0] == done + 1
    assert [row["epoch"] for row in read_history(os.path.join(crashed_run, "history.jsonl"))] == list(
        range(0, done + 2))


def test_two_workers_train_from_a_recordio_folder(tiny_faces, tmp_path):
    from benchmarks.recordio import write_rec_copy
    from data.folders import scan_identity_folder

    write_rec_copy(scan_identity_folder(tiny_faces.train_dir), str(tmp_path / "rec"))
    runs_dir = str(tmp_path / "runs")
    results = finish(launch_workers(tiny_faces, runs_dir, 1, data=str(tmp_path / "rec")))
    for code, out, err in results:
        assert code == 0, err[-3000:]
    assert "global batch 16 = 8 per replica x 2" in results[0][1]
    (run_dir,) = glob.glob(os.path.join(runs_dir, "*"))
    with open(os.path.join(run_dir, "recipe.json")) as file:
        stored = json.load(file)
    assert (stored["num_images"], stored["num_classes"], stored["replicas"]) == (64, 8, 2)
    assert [epoch for epoch, _ in list_checkpoints(run_dir)] == [1]
