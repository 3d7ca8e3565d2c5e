"""A run folder's class list: read back as written, and a damaged one refused as one sentence naming the file."""
import json
import os

import pytest

from recipes.commands.cli import main
from storage.json_files import JsonFileError
from storage.run_folder import RunFolder


def test_the_class_list_reads_back_in_class_id_order(tmp_path):
    run = RunFolder(str(tmp_path))
    run.write_classes(["ann", "bob", "cy"])
    run.write_classes(["other"])  # written once, never rewritten
    assert run.read_classes() == ["ann", "bob", "cy"]


@pytest.mark.parametrize("content", ['{"0": "ann", "2": "cy"}', '{"0": "ann", "1": 7}', '["ann", "bob"]', '{"0": "an'])
def test_a_damaged_class_list_is_refused_naming_the_file(tmp_path, content):
    (tmp_path / "classes.json").write_text(content)
    with pytest.raises(JsonFileError, match="classes.json"):
        RunFolder(str(tmp_path)).read_classes()


def test_resuming_a_run_whose_class_list_is_damaged_exits_2_with_one_line(softmax_run_copy, capsys):
    path = os.path.join(softmax_run_copy, "classes.json")
    with open(path) as file:
        classes = json.load(file)
    with open(path, "w") as file:
        json.dump({str(index + 1): name for index, name in enumerate(classes.values())}, file)
    with pytest.raises(SystemExit) as stopped:
        main(["run", "softmax", f"--resume={softmax_run_copy}", "--epochs=2"])
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and "Traceback" not in err
    assert "classes.json" in err.splitlines()[-1] and "is damaged" in err.splitlines()[-1]
