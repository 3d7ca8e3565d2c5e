"""The command line: `main([...])` in this process, and as users run it (`python -m recipes ...`, `face-recipes ...`)
in a subprocess where the process itself matters (its working folder, its exit code, a fresh start)."""
import glob
import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from recipes.commands.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONSOLE_SCRIPT = os.path.join(os.path.dirname(sys.executable), "face-recipes")


def run_cli(*args, cwd=None, env=None, program=None):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    command = [program] if program else [sys.executable, "-m", "recipes"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd or ROOT, env=environment,
                          timeout=600)


def tiny_run_args(tiny_faces, runs_dir):
    return ["--backbone=tiny", "--embedding_size=16", "--batch_size=16", "--epochs=1", f"--data={tiny_faces.train_dir}",
            f"--eval_bins=[{tiny_faces.bin_path}]", f"--runs_dir={runs_dir}", "--verbose=0", "--wandb=disabled"]


def run_main(capsys, *argv):
    """(exit code, stdout, stderr) of `main(argv)` in this process: 0 when it returns."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as stopped:
        code = stopped.code
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def test_list_prints_every_registry_and_entry(capsys):
    import recipes  # noqa: F401  (registers every built-in entry)
    from registry import ALL_REGISTRIES

    code, out, err = run_main(capsys, "list")
    assert code == 0, err
    registries = {registry.name: registry.names() for registry in ALL_REGISTRIES}
    assert {"backbones", "heads", "losses", "schedules", "callbacks", "datasets", "recipes"} <= set(registries)
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}  # entries without a docstring
    for registry, names in registries.items():  # (registered by other tests of this process) end at their name
        assert f"{registry} ({len(names)}):" in out
        assert set(names) <= listed, set(names) - listed


@pytest.mark.parametrize("args", [["--help"], ["-h"], [], ["run", "--help"], ["run", "arcface", "--help"],
                                  ["run", "arcface", "--", "--help"], ["run", "arcface", "--epochs=7", "-h"],
                                  ["show", "--help"], ["eval", "--help"]])
def test_every_help_form_explains_and_starts_nothing(args, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, *args)
    assert code == 0, err[-2000:]
    assert "usage" in out or "python -m recipes" in out
    if args[:1] == ["run"]:
        for field in ("--backbone=str", "--loss_args=dict", "--optimizer_args=dict", "--callbacks=list", "--epochs=int"):
            assert field in out
        if "arcface" in args:
            assert "fields of recipe 'arcface'" in out
            epochs_line = next(line for line in out.splitlines() if "--epochs=int" in line)
            assert epochs_line.split()[1] == ("7" if "--epochs=7" in args else "200")
    assert os.listdir(tmp_path) == []


def test_show_prints_the_resolved_recipe_and_its_json_runs_the_same_recipe(tmp_path, capsys):
    code, out, err = run_main(capsys, "show", "arcface", "--epochs=3.0", "--lr=1e-2", "--loss_args.preset=arcface",
                              "--lr_schedule=polynomial")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["epochs"] == 3 and shown["lr"] == 0.01
    assert shown["loss_args"]["margin1"] == 1.0 and shown["loss_args"]["margin3"] == 0.5
    assert shown["schedule_args"] == {"warmup_epochs": 0, "power": 1.0}
    assert shown["callbacks"][0] == "nan_guard" and "checkpoint" in shown["callback_args"]
    path = tmp_path / "shown.json"
    path.write_text(out)
    code, again, err = run_main(capsys, "show", str(path))
    assert code == 0, err
    assert json.loads(again) == shown


@pytest.mark.slow
def test_unknown_field_fails_fast_with_close_fields_and_exit_code_2(tmp_path):
    result = run_cli("run", "softmax", "--epochs=1", "--epohcs=3", f"--runs_dir={tmp_path}")
    assert result.returncode == 2
    assert "epohcs" in result.stderr and "Did you mean 'epochs'" in result.stderr
    assert "Traceback" not in result.stderr and os.listdir(tmp_path) == []


def test_misspelt_backbone_suggests_tiny(capsys):
    code, _, err = run_main(capsys, "run", "softmax", "--backbone=tinny")
    assert code == 2 and "Did you mean 'tiny'" in err


@pytest.mark.slow
@pytest.mark.parametrize("program", ["module", "console_script"])
def test_runs_from_a_folder_that_holds_data_losses_and_callbacks(program, tiny_faces, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "__init__.py").write_text("raise SystemExit('the working folder shadowed data')\n")
    (tmp_path / "losses.py").write_text("raise SystemExit('the working folder shadowed losses')\n")
    (tmp_path / "callbacks.py").write_text("raise SystemExit('the working folder shadowed callbacks')\n")
    result = run_cli("run", "softmax", *tiny_run_args(tiny_faces, tmp_path / "runs"), cwd=tmp_path,
                     program=CONSOLE_SCRIPT if program == "console_script" else None)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done:" in result.stdout
    listing = run_cli("list", cwd=tmp_path)
    assert "augmentations (0)" not in listing.stdout and "  flip " in listing.stdout


PLUGIN = textwrap.dedent('''
    import keras
    from recipes.recipe import Recipe
    from registry import CALLBACKS, RECIPES

    COUNT_FILE = {count_file!r}

    class CountEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            with open(COUNT_FILE, "a") as file:
                file.write(f"{{epoch + 1}}\\n")

    @CALLBACKS.register("count_epochs")
    def count_epochs(context):
        return CountEpochs()

    @RECIPES.register("plugin_softmax")
    def plugin_softmax():
        return Recipe(name="plugin_softmax", loss="softmax", plugins=[__file__])

    @RECIPES.register("plugin_arcface")
    def plugin_arcface():
        return Recipe(name="plugin_arcface", loss="arcface", plugins=[__file__])
''')


@pytest.mark.slow
def test_run_a_recipe_file_add_a_plugin_callback_then_resume_it_from_its_folder(tiny_faces, tmp_path, capsys):
    count_file = tmp_path / "epochs.txt"
    recipe_file = tmp_path / f"my_recipes_{uuid.uuid4().hex[:8]}.py"  # a module name of its own in this process
    recipe_file.write_text(PLUGIN.format(count_file=str(count_file)))
    runs = tmp_path / "runs"
    code, _, err = run_main(capsys, "run", str(recipe_file), *tiny_run_args(tiny_faces, runs))
    assert code == 2 and "plugin_softmax" in err and ":NAME" in err
    code, _, err = run_main(capsys, "run", f"{recipe_file}:plugin_softmax", *tiny_run_args(tiny_faces, runs),
                            "--callbacks=+count_epochs")
    assert code == 0, err[-3000:]
    assert count_file.read_text().split() == ["1"]
    (run_dir,) = glob.glob(str(runs / "plugin_softmax+backbone=tiny-*"))  # named after the overridden part
    resumed = run_cli("run", "plugin_softmax", f"--resume={run_dir}", "--epochs=3")  # a fresh process: the plugin
    assert resumed.returncode == 0, resumed.stderr[-3000:]  # file comes back from the run's recipe.json
    assert count_file.read_text().split() == ["1", "2", "3"]
    stored = json.loads(open(os.path.join(run_dir, "recipe.json")).read())
    assert stored["epochs"] == 3 and stored["callbacks"][-1] == "count_epochs"


@pytest.mark.slow
def test_a_runs_recipe_json_trains_the_same_recipe(tiny_faces, tmp_path, capsys):
    code, _, err = run_main(capsys, "run", "cosface", *tiny_run_args(tiny_faces, tmp_path / "a"), "--loss_args.scale=16")
    assert code == 0, err[-3000:]
    (run_dir,) = glob.glob(str(tmp_path / "a" / "*"))
    code, _, err = run_main(capsys, "run", os.path.join(run_dir, "recipe.json"), f"--runs_dir={tmp_path / 'b'}")
    assert code == 0, err[-3000:]
    (second_dir,) = glob.glob(str(tmp_path / "b" / "*"))
    recipes = [json.loads(open(os.path.join(folder, "recipe.json")).read()) for folder in (run_dir, second_dir)]
    fields = set(recipes[0]) - {"runs_dir", "git_dirty"}
    assert {key: recipes[0][key] for key in fields} == {key: recipes[1][key] for key in fields}
    assert recipes[1]["loss_args"]["scale"] == 16.0 and recipes[1]["loss_args"]["margin2"] == 0.35
