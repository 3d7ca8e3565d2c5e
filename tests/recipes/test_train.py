"""Whole training runs on the tiny synthetic set, in process."""
import json
import os

import keras
import numpy as np
import pytest

import recipes  # noqa: F401
from storage.checkpoints import list_checkpoints
from storage.history import read_history
from recipes.resolve import resolve_recipe
from recipes.face_model import FaceTrainingModel
from recipes.train import train


@pytest.mark.slow
def test_one_epoch_of_softmax_writes_a_complete_run_folder(softmax_run, tiny_faces):
    run_dir = softmax_run
    for name in ("recipe.json", "classes.json", "history.jsonl", "model.keras", "embedding.keras",
                 "best_embedding.keras"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    with open(os.path.join(run_dir, "recipe.json")) as file:
        stored = json.load(file)
    assert stored["loss"] == "softmax" and stored["num_classes"] == 8 and stored["num_images"] == 64
    with open(os.path.join(run_dir, "classes.json")) as file:
        assert sorted(json.load(file).values()) == sorted(n for n in os.listdir(tiny_faces.train_dir) if n[0] != ".")
    baseline, row = read_history(os.path.join(run_dir, "history.jsonl"))
    assert baseline["epoch"] == 0 and 0.0 <= baseline["verify/acc"] <= 1.0 and "loss" not in baseline
    assert row["epoch"] == 1 and np.isfinite(row["loss"]) and row["lr"] == pytest.approx(0.001)
    assert 0.0 <= row["verify/acc"] <= 1.0 and "verify/acc_std" in row and "verify/best_acc" in row
    assert [epoch for epoch, _ in list_checkpoints(run_dir)] == [1]

    training = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    embedding = keras.saving.load_model(os.path.join(run_dir, "embedding.keras"))
    assert isinstance(training, FaceTrainingModel)
    images = np.random.default_rng(0).uniform(0, 255, (4, 112, 112, 3)).astype("float32")
    np.testing.assert_allclose(embedding.predict(images, verbose=0), training.embedder.predict(images, verbose=0),
                               rtol=1e-6, atol=1e-6)
    assert training.predict(images, verbose=0)["logits"].shape == (4, 8)


@pytest.mark.slow
def test_center_loss_added_to_any_loss_and_its_centres_are_saved(tiny_overrides):
    run_dir = train(resolve_recipe("cosface", {**tiny_overrides, "center_factor": 0.5}))
    training = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    assert training.face_loss.factor == 0.5 and training.face_loss.base.margin2 == pytest.approx(0.35)
    centers = training.face_loss.center.centers.numpy()
    assert centers.shape == (8, 16) and np.abs(centers).sum() > 0
    np.testing.assert_array_equal(np.load(os.path.join(run_dir, "centers.npy")), centers)
    from recipes.train import build_training_model

    restarted = build_training_model(resolve_recipe("center_softmax", {
        **tiny_overrides, "centers_file": os.path.join(run_dir, "centers.npy")}), num_classes=8)
    np.testing.assert_array_equal(restarted.face_loss.center.centers.numpy(), centers)


def test_unknown_dataset_folder_is_a_clear_error(tiny_overrides, tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        train(resolve_recipe("softmax", {**tiny_overrides, "data": str(tmp_path / "does-not-exist")}))


@pytest.mark.slow
def test_eval_command_prints_a_table_for_a_saved_model(softmax_run, tiny_faces, tmp_path, capsys):
    import shutil

    from recipes.commands.cli import main

    second_bin = shutil.copy(tiny_faces.bin_path, tmp_path / "again.bin")
    for model in ("embedding.keras", "model.keras"):
        main(["eval", f"--model={os.path.join(softmax_run, model)}", f"--bins=[{tiny_faces.bin_path},{second_bin}]"])
        printed = capsys.readouterr().out
        lines = [line.split()[1:] for line in printed.splitlines() if line.split()[:1] in (["verify"], ["again"])]
        assert len(lines) == 2 and lines[0] == lines[1]
        assert 0.0 <= float(lines[0][0]) <= 1.0 and lines[0][-1] == "60"


@pytest.mark.slow
@pytest.mark.filterwarnings("error:Learning rate reduction is conditioned")
def test_reduce_on_plateau_lowers_the_lr_when_the_metric_stalls(tiny_overrides):
    run_dir = train(resolve_recipe("softmax", {
        **tiny_overrides, "epochs": 3, "lr_schedule": "reduce_on_plateau",
        "eval_monitor": "verify/best_acc",  # the best model by another metric than the schedule's: both work
        "schedule_args.monitor": "verify/acc", "schedule_args.patience": 0, "schedule_args.factor": 0.5,
        "steps_per_epoch": 1}))
    rows = read_history(os.path.join(run_dir, "history.jsonl"))[1:]
    accs = [row["verify/acc"] for row in rows]
    lrs = [row["lr"] for row in rows]
    assert lrs[0] == pytest.approx(0.001)
    for index in range(1, 3):
        improved = accs[index] > max(accs[:index])
        expected = lrs[index - 1] if improved else lrs[index - 1] * 0.5
        assert lrs[index] == pytest.approx(expected)


@pytest.mark.slow
def test_a_folder_with_bad_files_trains_an_epoch_and_lists_them(tiny_faces, tmp_path):
    from image_files import write_acceptance_folder

    bad = write_acceptance_folder(str(tmp_path / "faces"))
    run_dir = train(resolve_recipe("softmax", {
        "backbone": "tiny", "embedding_size": 16, "batch_size": 4, "epochs": 1, "data": str(tmp_path / "faces"),
        "eval_bins": [tiny_faces.bin_path], "runs_dir": str(tmp_path / "runs"), "verbose": 0}))
    with open(os.path.join(run_dir, "recipe.json")) as file:
        assert json.load(file)["num_classes"] == 3
    with open(os.path.join(run_dir, "classes.json")) as file:
        assert sorted(json.load(file).values()) == ["0", "0042", "Tom_Hanks"]
    with open(os.path.join(run_dir, "skipped_files.tsv")) as file:
        assert {line.split("\t")[0] for line in file} == bad
    assert [row["epoch"] for row in read_history(os.path.join(run_dir, "history.jsonl"))] == [0, 1]
