"""`run ... --tracking=tensorboard` through the command line with its output going to a log: TensorBoard event files
with step and epoch scalars (read with TensorBoard's own reader), no W&B, no progress bars, the typed text kept, a
folder named after the overrides; then `eval --model=RUN_DIR` and `compare` of that run."""
import contextlib
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from recipes.commands.cli import main
from recipes.commands.compare import compare_runs
from storage.history import read_history

pytestmark = pytest.mark.slow  # every test reads one 2-epoch run trained for this module


@pytest.fixture(scope="module")
def tensorboard_run(tiny_faces, tmp_path_factory):
    """(run folder, stdout, stderr) of a 2-epoch run, its output written to text buffers as to a log file."""
    runs_dir = tmp_path_factory.mktemp("runs")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(["run", "arcface", "--loss=cosface", "--backbone=tiny", "--embedding_size=16", "--batch_size=16",
              "--epochs=2", f"--data={tiny_faces.train_dir}", f"--eval_bins=[{tiny_faces.bin_path}]",
              "--eval_batch_size=8", f"--runs_dir={runs_dir}", "--log_every_steps=2", "--tracking=tensorboard",
              "--wandb_group=1e3", "--wandb=auto"])
    (run_dir,) = [os.path.join(runs_dir, name) for name in os.listdir(runs_dir)]
    return run_dir, out.getvalue(), err.getvalue()


def scalars(folder):
    """{tag: [(step, value)]} of the TensorBoard event files in `folder`, read by TensorBoard's EventAccumulator."""
    reader = event_accumulator.EventAccumulator(folder, size_guidance={event_accumulator.TENSORS: 0})
    reader.Reload()
    return {tag: [(event.step, float(tf.make_ndarray(event.tensor_proto))) for event in reader.Tensors(tag)]
            for tag in reader.Tags()["tensors"]}


def test_event_files_hold_step_and_epoch_scalars_and_no_wandb_folder(tensorboard_run):
    run_dir, out, _ = tensorboard_run
    assert os.path.basename(run_dir).startswith("arcface+backbone=tiny+loss=cosface-")
    assert not any("wandb" in name for _, folders, files in os.walk(run_dir) for name in folders + files)
    assert "tracking: tensorboard (--tracking=tensorboard)" in out
    logged = scalars(os.path.join(run_dir, "tensorboard", "train"))
    history = read_history(os.path.join(run_dir, "history.jsonl"))
    steps_per_epoch = 64 // 16
    for key in ("loss", "lr", "verify/acc", "verify/roc_auc", "images_per_second"):
        epochs = [step for step, _ in logged[key]]
        assert epochs == ([0, 1, 2] if key.startswith("verify/") else [1, 2]), key
        expected = [row[key] for row in history if key in row]
        np.testing.assert_allclose([value for _, value in logged[key]], expected, rtol=1e-5, err_msg=key)
    for key in ("step/loss", "step/lr", "step/images_per_second"):
        assert [step for step, _ in logged[key]] == list(range(2, 2 * steps_per_epoch + 1, 2)), key
    assert logged["step/loss"][-1][1] == pytest.approx(history[-1]["loss"], rel=1e-5)  # the epoch's last step


def test_a_log_gets_no_progress_bar_and_one_line_per_epoch(tensorboard_run):
    _, out, err = tensorboard_run
    assert "\r" not in out and "\r" not in err
    assert sum(line.startswith("Epoch ") for line in out.splitlines()) == 2
    assert sum(line.startswith(">>>> verify") for line in out.splitlines()) == 3


def test_typed_text_is_kept_in_recipe_json(tensorboard_run):
    run_dir, _, _ = tensorboard_run
    with open(os.path.join(run_dir, "recipe.json")) as file:
        stored = json.load(file)
    assert stored["wandb_group"] == "1e3" and stored["tracking"] == "tensorboard" and stored["loss"] == "cosface"


def test_eval_takes_the_run_folder_and_compare_reads_the_run(tensorboard_run, tiny_faces, capsys):
    run_dir, _, _ = tensorboard_run
    main(["eval", f"--model={run_dir}", f"--bins=[{tiny_faces.bin_path}]", "--batch_size=8"])
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("verify")]
    best = max(row["verify/acc"] for row in read_history(os.path.join(run_dir, "history.jsonl"))[1:])
    assert float(row.split()[1]) == pytest.approx(best, abs=1e-4)  # best_embedding.keras: the best epoch's model
    table, _, _ = compare_runs([run_dir], None, str(run_dir) + "-compare.png")
    assert os.path.basename(run_dir) in table
