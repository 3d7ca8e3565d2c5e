"""Run folders are named after the recipe and the parts it overrides; `--resume` finds the newest run of a recipe."""
import os

import pytest

import recipes  # noqa: F401  (registers the recipes)
from recipes.resolve import resolve_recipe, resolve_resume
from recipes.run_label import MAX_LABEL, run_label
from storage.checkpoints import find_run_to_resume
from storage.run_folder import RunFolder


@pytest.mark.parametrize("reference, overrides, label", [
    ("arcface", {}, "arcface"),
    ("arcface", {"epochs": 3, "lr": 0.1, "data": "/some/where"}, "arcface"),  # not parts: not in the name
    ("arcface", {"loss": "cosface"}, "arcface+loss=cosface"),
    ("arcface", {"loss_args.preset": "arcface"}, "arcface+loss.preset=arcface"),
    ("cosface", {}, "cosface"),  # its own preset is the recipe's, not an override
    ("center_softmax", {"backbone": "tiny", "lr_schedule": "constant"},
     "center_softmax+backbone=tiny+lr_schedule=constant"),
    ("softmax", {"optimizer": "sgd", "optimizer_args.momentum": 0.9}, "softmax+optimizer=sgd+optimizer.momentum=0.9"),
])
def test_label_names_the_overridden_parts(reference, overrides, label):
    assert run_label(resolve_recipe(reference, overrides)) == label


def test_long_labels_are_cut_at_a_whole_part_and_count_the_rest():
    recipe = resolve_recipe("ms1mv3_r50", {"backbone": "iresnet18", "head": "subcenter", "loss": "softmax",
                                           "optimizer": "adamw", "lr_schedule": "constant"})
    label = run_label(recipe)
    assert label == "ms1mv3_r50+backbone=iresnet18+head=subcenter+loss=softmax+2more" and len(label) <= MAX_LABEL


def test_labels_are_safe_folder_names():
    recipe = resolve_recipe("softmax", {"name": "my recipe/v2"})
    assert run_label(recipe) == "my_recipe_v2"
    assert RunFolder.label_of("arcface+loss=cosface-20261206-101010") == "arcface+loss=cosface"
    assert RunFolder.label_of("arcface-20261206-101010-3") == "arcface" and RunFolder.label_of("arcface") is None


def make_run(runs_dir, name, mtime):
    checkpoint = runs_dir / name / "checkpoints" / "epoch-0001"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.json").write_text("{}")
    recipe = name.split("+")[0].split("-")[0]
    (runs_dir / name / "recipe.json").write_text(f'{{"name": "{recipe}", "backbone": "tiny"}}')
    os.utime(runs_dir / name, (mtime, mtime))
    return str(runs_dir / name)


def test_resume_prefers_the_newest_run_named_as_asked_else_the_newest_of_the_recipe(tmp_path):
    plain = make_run(tmp_path, "arcface-20261206-100000", 1000)
    tiny = make_run(tmp_path, "arcface+backbone=tiny-20261206-110000", 2000)
    make_run(tmp_path, "arcface+backbone=tiny-20261206-090000", 500)
    make_run(tmp_path, "arcface_torch-20261206-120000", 3000)  # another recipe's
    make_run(tmp_path, "center_arcface-20261206-120000", 3000)
    assert find_run_to_resume(str(tmp_path), "arcface") == tiny
    assert find_run_to_resume(str(tmp_path), "arcface", "arcface") == plain
    assert find_run_to_resume(str(tmp_path), "arcface", "arcface+backbone=tiny") == tiny
    assert find_run_to_resume(str(tmp_path), "arcface", "arcface+loss=cosface") == tiny
    with pytest.raises(FileNotFoundError, match="no run of recipe 'cosface'"):
        find_run_to_resume(str(tmp_path), "cosface")
    _, folder = resolve_resume("arcface", True, {"runs_dir": str(tmp_path)})
    assert folder == plain
    _, folder = resolve_resume("arcface", True, {"runs_dir": str(tmp_path), "backbone": "tiny"})
    assert folder == tiny
