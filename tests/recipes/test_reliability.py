"""Bad inputs and faults end in correct training or a clear refusal, and nothing of a run is lost."""
import errno
import glob
import multiprocessing
import os
import shutil

import keras
import pytest

import recipes  # noqa: F401
from storage.checkpoints import list_checkpoints
from storage.run_folder import RunFolder
from recipes.resolve import resolve_recipe
from recipes.recipe import RecipeError
from recipes.train import RunRefused, TrainingStopped, train
from registry import CALLBACKS


def files_of(run_dir):
    return {name: open(os.path.join(run_dir, name), "rb").read() for name in ("recipe.json", "classes.json")}


@pytest.fixture
def own_faces(tiny_faces, tmp_path):
    """A private copy of the tiny training folder, free to change."""
    return shutil.copytree(tiny_faces.train_dir, tmp_path / "faces")


@pytest.mark.slow
def test_resume_on_changed_data_is_refused_and_the_run_record_is_untouched(tiny_overrides, own_faces):
    overrides = {**tiny_overrides, "data": str(own_faces)}
    run_dir = train(resolve_recipe("softmax", overrides))
    before = files_of(run_dir)
    removed = sorted(os.listdir(own_faces))[3]
    shutil.rmtree(own_faces / removed)
    with pytest.raises(RunRefused, match=f"removed 1 identities \\({removed}\\)"):
        train(resolve_recipe("softmax", {**overrides, "epochs": 2}), resume_dir=run_dir)
    assert files_of(run_dir) == before
    (own_faces / "zz_newcomer").mkdir()
    for image in sorted(os.listdir(own_faces / sorted(os.listdir(own_faces))[0]))[:2]:
        shutil.copy(own_faces / sorted(os.listdir(own_faces))[0] / image, own_faces / "zz_newcomer" / image)
    with pytest.raises(RunRefused, match="added 1 identities \\(zz_newcomer\\).*removed|removed.*added 1"):
        train(resolve_recipe("softmax", {**overrides, "epochs": 2}), resume_dir=run_dir)
    assert files_of(run_dir) == before


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tiny_overrides, capsys):
    overrides = {**tiny_overrides, "epochs": 2}
    run_dir = train(resolve_recipe("softmax", overrides))
    newest = os.path.join(run_dir, "checkpoints", "epoch-0002")
    for name in os.listdir(newest):
        path = os.path.join(newest, name)
        with open(path, "r+b") as file:
            file.truncate(os.path.getsize(path) // 2)
    capsys.readouterr()
    train(resolve_recipe("softmax", {**overrides, "epochs": 3}), resume_dir=run_dir)
    out = capsys.readouterr().out
    assert f"resuming after epoch 1 from {run_dir}, skipping damaged epoch-0002:" in out
    assert [epoch for epoch, _ in list_checkpoints(run_dir)][-1] == 3


def _create_runs(barrier, runs_dir, queue):
    barrier.wait()
    queue.put([RunFolder.create(runs_dir, "same").path for _ in range(10)])


def test_simultaneous_starts_get_distinct_run_folders(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(6), context.Queue()
    processes = [context.Process(target=_create_runs, args=(barrier, str(tmp_path), queue)) for _ in range(6)]
    for process in processes:
        process.start()
    folders = [path for _ in processes for path in queue.get(timeout=60)]
    for process in processes:
        process.join()
    assert len(folders) == 60 and len(set(folders)) == 60 and len(os.listdir(tmp_path)) == 60


@pytest.mark.parametrize("overrides, message", [
    ({"augment": "[flip,smudge]"}, "augmentation 'smudge'"),
    ({"optimizer": "adamx"}, "Did you mean 'adamax'"),
    ({"eval_monitor": "lfw/acc"}, "lfw/acc.*verify"),
    ({"eval_bins": ["missing.bin"]}, "missing.bin.*does not exist"),
    ({"eval_bins": ["empty.bin"]}, "empty.bin.*is empty"),
    ({"eval_bins": ["bins/**/*.bin"]}, r"bins/\*\*/\*\.bin' matches no file"),
])
def test_everything_checkable_without_data_is_refused_before_any_folder_exists(tiny_overrides, tmp_path, overrides,
                                                                               message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(RecipeError, match=message):
        train(resolve_recipe("softmax", {**tiny_overrides, **overrides}))
    assert not os.path.exists(tiny_overrides["runs_dir"])


@pytest.mark.slow
def test_resume_with_fewer_epochs_than_done_changes_nothing(tiny_overrides):
    run_dir = train(resolve_recipe("softmax", {**tiny_overrides, "epochs": 2}))
    before = files_of(run_dir)
    with pytest.raises(RunRefused, match="2 epochs are trained already.*nothing to train"):
        train(resolve_recipe("softmax", {**tiny_overrides, "epochs": 1}), resume_dir=run_dir)
    assert files_of(run_dir) == before


class FullDiskAtEpoch2(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == 2:
            raise OSError(errno.ENOSPC, "No space left on device", "checkpoints/epoch-0002/model.keras")


CALLBACKS.register("full_disk_at_epoch_2", lambda context: FullDiskAtEpoch2())


@pytest.mark.slow
def test_a_full_disk_stops_with_a_sentence_and_the_last_checkpoint_resumes(tiny_overrides):
    overrides = {**tiny_overrides, "epochs": 3}
    with pytest.raises(TrainingStopped, match="disk is full.*epoch \\(1\\) is checkpointed.*--resume=") as stopped:
        train(resolve_recipe("softmax", {**overrides, "callbacks": "[nan_guard,verification,run_record,"
                                                                    "full_disk_at_epoch_2,checkpoint]"}))
    assert stopped.value.exit_code == 5
    (run_dir,) = glob.glob(os.path.join(tiny_overrides["runs_dir"], "*"))
    assert [epoch for epoch, _ in list_checkpoints(run_dir)] == [1]
    assert train(resolve_recipe("softmax", overrides), resume_dir=run_dir) == run_dir
    assert [epoch for epoch, _ in list_checkpoints(run_dir)][-1] == 3


def test_a_runs_dir_that_cannot_be_created_is_a_sentence(tiny_overrides, tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(RecipeError, match="runs_dir.*a_file"):
        train(resolve_recipe("softmax", {**tiny_overrides, "runs_dir": str(tmp_path / "a_file" / "runs")}))
