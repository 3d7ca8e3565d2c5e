"""`atomic_write_directory`: a folder (e.g. a SavedModel) is replaced whole or not at all."""
import os

import pytest

from storage.atomic import atomic_write_directory


def _fill(folder, text):
    os.makedirs(os.path.join(folder, "variables"))
    with open(os.path.join(folder, "saved_model.pb"), "w") as file:
        file.write(text)
    with open(os.path.join(folder, "variables", "data"), "w") as file:
        file.write(text * 2)


def _read(folder):
    with open(os.path.join(folder, "saved_model.pb")) as file, open(os.path.join(folder, "variables", "data")) as data:
        return file.read(), data.read()


def test_a_new_folder_is_created_and_an_old_one_replaced_whole(tmp_path):
    target = str(tmp_path / "export" / "saved_model")
    atomic_write_directory(target, lambda folder: _fill(folder, "first"))
    assert _read(target) == ("first", "firstfirst")
    with open(os.path.join(target, "stale.txt"), "w") as file:
        file.write("from the old export")
    atomic_write_directory(target, lambda folder: _fill(folder, "second"))
    assert _read(target) == ("second", "secondsecond")
    assert sorted(os.listdir(target)) == ["saved_model.pb", "variables"]
    assert os.listdir(tmp_path / "export") == ["saved_model"]


def test_a_failed_write_leaves_the_old_folder_and_no_temporary_folder(tmp_path):
    target = str(tmp_path / "saved_model")
    atomic_write_directory(target, lambda folder: _fill(folder, "good"))

    def failing(folder):
        _fill(folder, "half")
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError, match="converter crashed"):
        atomic_write_directory(target, failing)
    assert _read(target) == ("good", "goodgood")
    assert os.listdir(tmp_path) == ["saved_model"]
