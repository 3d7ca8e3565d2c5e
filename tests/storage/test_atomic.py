"""Atomic writes: the mode an ordinary `open` would give (umask honoured), and never a torn or stray file."""
import json
import os
import stat

import keras
import pytest

from storage.atomic import atomic_write, save_model, write_bytes, write_json
from data.bins import write_bin


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request):
    """The process umask set to the parameter for the test, restored afterwards."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_files_get_the_mode_of_an_ordinary_open(tmp_path, umask):
    with open(tmp_path / "ordinary.txt", "w") as file:
        file.write("x")
    expected = 0o666 & ~umask
    assert _mode(tmp_path / "ordinary.txt") == expected
    write_json(tmp_path / "recipe.json", {"epochs": 3})
    write_bytes(tmp_path / "index.json.gz", b"\x1f\x8b")
    write_bin(tmp_path / "pairs.bin", [b"a", b"b"], [True])
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    save_model(model, str(tmp_path / "model.keras"))
    for name in ("recipe.json", "index.json.gz", "pairs.bin", "model.keras"):
        assert _mode(tmp_path / name) == expected, name
    assert json.loads((tmp_path / "recipe.json").read_text()) == {"epochs": 3}
    assert sorted(os.listdir(tmp_path)) == ["index.json.gz", "model.keras", "ordinary.txt", "pairs.bin", "recipe.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    write_json(tmp_path / "state.json", {"epoch": 1})

    def half_then_fail(temp_path):
        with open(temp_path, "w") as file:
            file.write('{"epo')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(str(tmp_path / "state.json"), half_then_fail)
    assert json.loads((tmp_path / "state.json").read_text()) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_the_folder_is_created_and_a_file_replaced_whole(tmp_path):
    target = tmp_path / "new" / "deeper" / "data.bin"
    write_bytes(target, bytes(range(256)) * 4)
    write_bytes(target, b"short")
    assert target.read_bytes() == b"short" and os.listdir(target.parent) == ["data.bin"]
