"""Issue 27, cases 2, 3, 5, 7 and 10: a refusal of the input is one `error:` line, exit code 2, before anything
is written; recipe files are read as strictly as the command line."""
import json
import os
import textwrap
import uuid

import pytest

from recipes.commands.cli import main
from recipes.recipe import RUN_FACTS, Recipe

TINY = ["--backbone=tiny", "--embedding_size=16", "--batch_size=16", "--wandb=disabled", "--verbose=0"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working folder; the runs folder would be `runs/` inside it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(capsys, workdir, *argv):
    """stderr of `python -m recipes *argv` run in this process, checked to be a refusal: exit code 2, no
    traceback, and nothing written (no runs folder; the working folder holds only what the test put there)."""
    before = sorted(os.listdir(workdir))
    with pytest.raises(SystemExit) as stopped:
        main(list(argv))
    err = capsys.readouterr().err
    assert stopped.value.code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert sorted(os.listdir(workdir)) == before
    return err


def one_line(err):
    assert err.count("\n") == 1 and err.endswith("\n"), err
    return err


@pytest.mark.parametrize("options, message", [
    # case 5: rates that are not finite positive numbers
    (["--lr=nan"], "error: --lr=nan must be a finite number."),
    (["--lr=inf"], "error: --lr=inf must be a finite number."),
    (["--lr=0"], "error: --lr=0.0 must be positive."),
    # case 7: option values out of their part's range
    (["--head=partial_fc", "--head_args.sample_rate=0"], "--head_args.sample_rate=0.0 must be in (0, 1]"),
    (["--head=partial_fc", "--head_args.sample_rate=-0.5"], "--head_args.sample_rate=-0.5 must be in (0, 1]"),
    (["--head=partial_fc", "--head_args.sample_rate=1.5"], "--head_args.sample_rate=1.5 must be in (0, 1]"),
    (["--head=partial_fc", "--head_args.sample_rate=nan"], "--head_args.sample_rate=nan must be a finite number"),
    (["--head=subcenter", "--head_args.k=0"], "--head_args.k=0 must be a positive integer."),
    (["--optimizer=sgd", "--optimizer_args.momentum=1.5"], "--optimizer_args.momentum=1.5 must be in [0, 1)."),
    (["--optimizer=sgd", "--optimizer_args.momentum=1"], "--optimizer_args.momentum=1.0 must be in [0, 1)."),
    (["--loss=arcface", "--loss_args.scale=-64"], "--loss_args.scale=-64.0 must be > 0 (the logit scale s)."),
    (["--loss=adaface", "--loss_args.t_alpha=0"], "--loss_args.t_alpha=0.0 must be in (0, 1]"),
    # case 3: a warm-up as long as the run or longer
    (["--lr_schedule=polynomial", "--schedule_args.warmup_epochs=5"],
     "--schedule_args.warmup_epochs=5.0 must be in [0, 2) (shorter than the run's --epochs=2"),
    (["--lr_schedule=cosine", "--schedule_args.warmup_epochs=2"],
     "--schedule_args.warmup_epochs=2.0 must be in [0, 2) (shorter than the run's --epochs=2"),
    (["--lr_schedule=step", "--schedule_args.factor=0"], "--schedule_args.factor=0.0 must be > 0"),
    (["--callbacks=+early_stopping", "--callback_args.early_stopping.patience=-3"],
     "--callback_args.early_stopping.patience=-3 must be an integer >= 0"),
    (["--callbacks=+early_stopping", "--callback_args.early_stopping.min_delta=nan"],
     "--callback_args.early_stopping.min_delta=nan must be a finite number >= 0"),
    (["--callbacks=+early_stopping", "--callback_args.early_stopping.monitor=lfw/accc"],
     "--callback_args.early_stopping.monitor='lfw/accc' is not a metric the verification logs"),
    (["--callback_args.tensorboard.histogram_freq=-1"], "--callback_args.tensorboard.histogram_freq=-1 must be an "
                                                        "integer >= 0"),
])
def test_out_of_range_values_are_refused_before_the_data_scan(options, message, tiny_faces, workdir, capsys):
    err = refused(capsys, workdir, "run", "softmax", *TINY, "--epochs=2", f"--data={tiny_faces.train_dir}",
                  "--runs_dir=runs", *options)
    assert message in one_line(err)


def test_a_warm_up_shorter_than_the_run_is_accepted():
    recipe = Recipe().replace(epochs=3, lr_schedule="polynomial", **{"schedule_args.warmup_epochs": 2.5})
    assert recipe.schedule_args == {"warmup_epochs": 2.5}


def shown(capsys, *argv):
    main(["show", *argv])
    return json.loads(capsys.readouterr().out)


def test_an_unknown_field_in_a_recipe_file_is_refused_naming_the_file(tiny_faces, workdir, capsys):
    recipe = {**shown(capsys, "softmax"), "learning_rate": 0.1}
    (workdir / "r.json").write_text(json.dumps(recipe, indent=2))
    err = refused(capsys, workdir, "run", "r.json", *TINY, f"--data={tiny_faces.train_dir}", "--epochs=1")
    assert one_line(err).startswith("error: recipe file 'r.json': unknown recipe field 'learning_rate'. "
                                    "Did you mean 'lr'? Known: ")

    recipe = {**shown(capsys, "softmax"), "epohcs": 3, "notes": "x"}
    (workdir / "r.json").write_text(json.dumps(recipe))
    err = refused(capsys, workdir, "show", "r.json")
    assert "unknown recipe fields 'epohcs', 'notes'. Did you mean 'epochs'" in one_line(err)
    assert " for 'epohcs'? Known: " in err


def test_a_runs_recipe_json_holds_fields_and_run_facts_only_and_reads_back(softmax_run, capsys):
    stored = json.loads(open(os.path.join(softmax_run, "recipe.json")).read())
    assert set(stored) - set(Recipe.field_names()) == set(RUN_FACTS)
    assert shown(capsys, os.path.join(softmax_run, "recipe.json"))["name"] == "softmax"


def test_a_bad_value_in_a_recipe_file_names_the_file(workdir, capsys):
    (workdir / "r.json").write_text(json.dumps({**shown(capsys, "softmax"), "epochs": "many"}))
    err = refused(capsys, workdir, "show", "r.json")
    assert one_line(err).startswith("error: recipe file 'r.json': --epochs='many': ")


def test_a_recipe_file_of_a_newer_version_names_the_version_and_its_unknown_fields(workdir, capsys):
    recipe = {**shown(capsys, "softmax"), "project_version": "99.0.0", "ema_decay": 0.999}
    (workdir / "r.json").write_text(json.dumps(recipe))
    err = refused(capsys, workdir, "show", "r.json")
    assert "recipe file 'r.json': written by face-recipes 99.0.0, newer than this " in one_line(err)
    assert "its fields 'ema_decay' are unknown here. Upgrade face-recipes, or remove those fields." in err
    del recipe["ema_decay"]
    (workdir / "r.json").write_text(json.dumps(recipe))
    assert shown(capsys, "r.json")["name"] == "softmax"  # a newer file whose fields all exist here is read


def test_a_run_record_with_an_unknown_field_is_refused_on_resume(workdir, capsys):
    run = workdir / "runs" / "softmax-1"
    run.mkdir(parents=True)
    (run / "recipe.json").write_text(json.dumps({**shown(capsys, "softmax"), "num_images": 64, "lr_warmup": 2}))
    err = refused(capsys, workdir, "run", "softmax", f"--resume={run}")
    assert one_line(err).startswith(f"error: run {str(run)!r} (recipe.json): unknown recipe field 'lr_warmup'.")


@pytest.mark.parametrize("content, message", [
    ('{\n  "epochs": 3,\n  "lr": 0.1\n  "loss": "arcface"\n}\n',
     "error: recipe file 'r.json' is not valid JSON: line 4, column 3: Expecting ',' delimiter."),
    ('["softmax", "arcface"]', "error: recipe file 'r.json' holds a JSON array at its top level; it must be one "
                               "object {\"name\": value, ...}."),
    ('"softmax"', "error: recipe file 'r.json' holds a JSON string at its top level"),
])
def test_a_recipe_file_that_is_not_a_json_object_names_file_and_line(content, message, workdir, capsys):
    (workdir / "r.json").write_text(content)
    assert one_line(refused(capsys, workdir, "show", "r.json")).startswith(message)


def test_a_python_recipe_with_a_syntax_error_shows_file_line_and_caret_only(workdir, capsys):
    name = f"my_recipes_{uuid.uuid4().hex[:8]}.py"
    (workdir / name).write_text("from recipes.recipe import Recipe\n\n\ndef broken(:\n    return Recipe()\n")
    err = refused(capsys, workdir, "show", name)
    lines = err.splitlines()
    assert lines[0] == f"error: recipe file {name!r} has a syntax error:"
    assert lines[1] == f'  File "{workdir / name}", line 4'
    assert lines[2].strip() == "def broken(:" and lines[3].strip() == "^"
    assert lines[3].index("^") == lines[2].index(":")  # under the token Python rejects
    assert lines[-1].startswith("SyntaxError: ") and len(lines) == 5
    assert "importlib" not in err and "<frozen" not in err


def test_a_python_recipe_that_fails_while_loading_shows_only_its_own_frames(workdir, capsys):
    name = f"my_recipes_{uuid.uuid4().hex[:8]}.py"
    (workdir / name).write_text("SCALE = 64\nMARGIN = SCALE / undefined_name\n")
    err = refused(capsys, workdir, "show", name)
    assert err.splitlines()[0] == f"error: recipe file {name!r} raised NameError while loading:"
    assert f'File "{workdir / name}", line 2, in <module>' in err and "MARGIN = SCALE / undefined_name" in err
    assert err.rstrip().endswith("NameError: name 'undefined_name' is not defined")
    assert "importlib" not in err and "plugins.py" not in err


def test_a_recipe_function_that_returns_no_recipe_says_so(workdir, capsys):
    name = f"my_recipes_{uuid.uuid4().hex[:8]}"
    (workdir / f"{name}.py").write_text(textwrap.dedent(f'''
        from registry import RECIPES


        @RECIPES.register("{name}")
        def as_dict():
            return {{"name": "{name}", "lr": 0.1}}
    '''))
    err = refused(capsys, workdir, "show", f"{name}.py")
    assert one_line(err).startswith(f"error: recipe '{name}' (plugin_{name}.as_dict ({workdir / name}.py:5)) "
                                    "returned a dict, not a Recipe: return Recipe(name=..., ...)")
