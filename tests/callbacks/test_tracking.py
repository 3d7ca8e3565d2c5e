"""Experiment tracking: mode choice without network, offline runs read back with wandb's own reader, no key leaks.

Every test runs with a private HOME / wandb config dir / netrc, so no real key of the machine is
seen and nothing can go online.
"""
import json
import os
import subprocess
import sys

import pytest

import losses
import recipes  # noqa: F401
from storage.checkpoints import latest_checkpoint, read_state
from storage.history import read_history
from callbacks.trackers import chosen_trackers
from callbacks.tracking import ExperimentTracker, api_key_configured, flatten, resolve_mode
from recipes.resolve import resolve_recipe
from recipes.recipe import RecipeError
from recipes.train import train

FAKE_KEY = "fake0key0" + "0123456789abcdef" * 3


@pytest.fixture
def no_wandb_key(monkeypatch, tmp_path):
    """An environment with no W&B key anywhere: private HOME, config dir and netrc; no WANDB_* overrides."""
    home = tmp_path / "home"
    home.mkdir()
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_DIR",
                 "WANDB_SILENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / ".config" / "wandb"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(home / ".cache" / "wandb"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(home / ".local" / "share" / "wandb"))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
    return home


def read_offline_run(offline_run_dir):
    """{'run', 'config', 'history', 'artifacts', 'exit'} of an offline wandb run, via `wandb leet inspect --json`.

    That command is wandb's own reader of its `.wandb` transaction log (wandb-core); it prints
    one JSON object per record, which is all this function parses.
    """
    result = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(offline_run_dir)],
                            capture_output=True, text=True, timeout=120, check=True)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    run = next(record["run"] for record in records if record["type"] == "run")
    config = dict(run.get("config", {}).get("update", {}))
    for record in records:
        if record["type"] == "config":
            config.update(record["config"].get("update", {}))
    return {
        "run": run,
        "config": config,
        "history": [record["history"]["item"] for record in records if record["type"] == "history"],
        "artifacts": [record["artifact"] for record in records if record["type"] == "artifact"],
        "exit": next((record["exit"] for record in records if record["type"] == "exit"), None),
    }


def offline_runs(run_dir):
    folder = os.path.join(run_dir, "wandb")
    return sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.startswith("offline-run-"))


def test_mode_is_offline_without_a_key_and_online_with_one(no_wandb_key):
    environ = {"HOME": str(no_wandb_key), "NETRC": str(no_wandb_key / ".netrc"),
               "WANDB_CONFIG_DIR": str(no_wandb_key / "cfg")}
    assert not api_key_configured(environ)
    assert resolve_mode("auto", environ) == "offline"
    assert resolve_mode("auto", {**environ, "WANDB_API_KEY": FAKE_KEY}) == "online"
    assert resolve_mode("offline", {**environ, "WANDB_API_KEY": FAKE_KEY}) == "offline"
    assert resolve_mode("disabled", {**environ, "WANDB_API_KEY": FAKE_KEY}) == "disabled"
    assert resolve_mode("auto", {**environ, "WANDB_MODE": "disabled"}) == "disabled"
    assert resolve_mode("auto", {**environ, "WANDB_MODE": "dryrun", "WANDB_API_KEY": FAKE_KEY}) == "offline"
    with pytest.raises(ValueError, match="choose one of"):
        resolve_mode("sometimes", environ)


def test_a_netrc_entry_from_wandb_login_counts_as_a_key(no_wandb_key):
    environ = {"HOME": str(no_wandb_key), "NETRC": str(no_wandb_key / ".netrc"),
               "WANDB_CONFIG_DIR": str(no_wandb_key / "cfg")}
    (no_wandb_key / ".netrc").write_text(f"machine example.org\n  login user\n  password {FAKE_KEY}\n")
    assert resolve_mode("auto", environ) == "offline"
    (no_wandb_key / ".netrc").write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    assert resolve_mode("auto", environ) == "online"
    (no_wandb_key / ".netrc").write_text(f"machine wandb.mycompany.test\n  login user\n  password {FAKE_KEY}\n")
    assert resolve_mode("auto", {**environ, "WANDB_BASE_URL": "https://wandb.mycompany.test"}) == "online"
    (no_wandb_key / "cfg").mkdir()
    (no_wandb_key / "cfg" / "settings").write_text("[default]\nbase_url = https://wandb.mycompany.test\n")
    assert resolve_mode("auto", environ) == "online"


def test_online_without_a_key_falls_back_to_offline_with_a_warning(no_wandb_key, capsys):
    assert resolve_mode("online") == "offline"
    assert "no W&B API key" in capsys.readouterr().err


def test_recipe_rejects_an_unknown_wandb_mode():
    with pytest.raises(RecipeError, match="--wandb='sometimes'.*Known: auto, disabled, offline, online"):
        resolve_recipe("softmax", {"wandb": "sometimes"})


def test_config_is_flat_with_resolved_loss_options():
    assert flatten({"a": 1, "loss_args": {"margin2": 0.5, "deeper": {"x": [1]}}}) == {
        "a": 1, "loss_args.margin2": 0.5, "loss_args.deeper.x": [1]}
    recipe = resolve_recipe("cosface", {"backbone": "tiny", "loss_args.scale": 32.0, "center_factor": 0.01})
    config = flatten({**recipe.resolved(), "num_classes": 8, "replicas": 1, "project_version": "0.2.0",
                      "git_commit": None})
    assert config["loss"] == "arcface" and config["loss_args.preset"] == "cosface"
    assert config["loss_args.scale"] == 32.0  # given in the recipe
    assert (config["loss_args.margin1"], config["loss_args.margin2"], config["loss_args.margin3"]) == (1.0, 0.35, 0.0)
    assert config["center_factor"] == 0.01 and config["num_classes"] == 8 and config["replicas"] == 1
    assert config["wandb_group"] is None and config["seed"] == 0
    assert config["project_version"] and isinstance(config["git_commit"], (str, type(None)))
    assert not any(isinstance(value, dict) for value in config.values())


@pytest.mark.slow
def test_an_online_start_that_fails_continues_offline(no_wandb_key, monkeypatch, tmp_path, capsys):
    import wandb

    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    real_init = wandb.init

    def unreachable(*args, mode=None, **kwargs):
        if mode == "online":
            raise wandb.errors.CommError("Timed out while retrying: no such host")
        return real_init(*args, mode=mode, **kwargs)

    monkeypatch.setattr(wandb, "init", unreachable)
    tracker = ExperimentTracker.start("auto", str(tmp_path), project="face-recipes", config={"lr": 0.1})
    try:
        assert tracker.mode == "offline" and tracker.run_id
        tracker.log({"epoch": 1, "loss": 2.0})
    finally:
        tracker.finish()
    assert "logging offline instead" in capsys.readouterr().err
    (offline,) = offline_runs(str(tmp_path))
    assert read_offline_run(offline)["history"][0]["loss"] == 2.0


def test_a_wandb_error_while_logging_is_one_warning_not_a_crash(capsys):
    class BrokenRun:
        id = "abc"

        def log(self, metrics):
            raise ConnectionError("network gone")

    tracker = ExperimentTracker(BrokenRun(), "online")
    tracker.log({"loss": 1.0})
    tracker.log({"loss": 0.5})
    assert capsys.readouterr().err.count("network gone") == 1


@pytest.mark.slow
def test_offline_run_holds_config_and_history_and_a_resume_continues_it(no_wandb_key, tiny_overrides):
    tiny_overrides = {**tiny_overrides, "tracking": "wandb"}  # asked for: offline without a key
    run_dir = train(resolve_recipe("softmax", {**tiny_overrides, "epochs": 2}))
    (offline,) = offline_runs(run_dir)
    stored = read_offline_run(offline)
    history = read_history(os.path.join(run_dir, "history.jsonl"))

    run = stored["run"]
    assert run["project"] == "face-recipes" and run["run_group"] == "softmax"
    assert run["display_name"] == os.path.basename(run_dir)
    config = stored["config"]
    assert config["loss"] == "softmax" and config["backbone"] == "tiny" and config["batch_size"] == 16
    assert config["num_classes"] == 8 and config["num_images"] == 64 and config["replicas"] == 1
    assert config["data_resolved"] == os.path.abspath(tiny_overrides["data"])
    assert "schedule_args.decay" in config and config["project_version"]

    # wandb's step_sync puts the last epoch into the row of the ROC picture too: leave that row out here.
    epoch_rows = [row for row in stored["history"] if "epoch" in row and "verify/roc._type" not in row]
    assert [row["epoch"] for row in epoch_rows] == [0, 1, 2]
    assert epoch_rows[0]["verify/acc"] == pytest.approx(history[0]["verify/acc"])
    best_epoch = max(history[1:], key=lambda row: row["verify/acc"])["epoch"]
    (roc_row,) = [row for row in stored["history"] if "verify/roc._type" in row]  # the best epoch's ROC picture
    assert roc_row["verify/roc._type"] == "image-file" and roc_row["verify/roc.caption"] == f"best epoch {best_epoch}"
    assert os.path.getsize(os.path.join(offline, "files", roc_row["verify/roc.path"])) > 10_000
    for logged, recorded in zip(epoch_rows[1:], history[1:]):
        for key in ("loss", "lr", "verify/acc", "verify/acc_std", "verify/best_acc", "verify/xnorm",
                    "images_per_second"):
            assert logged[key] == pytest.approx(recorded[key]), key
    assert all(row["images_per_second"] > 0 for row in history[1:])
    assert stored["artifacts"] and all(artifact["type"] == "model" for artifact in stored["artifacts"])
    assert "best" in stored["artifacts"][-1]["aliases"]
    assert stored["exit"]["exit_code"] == 0

    run_id = run["run_id"]
    assert read_state(latest_checkpoint(run_dir))["wandb_run_id"] == run_id
    train(resolve_recipe("softmax", {**tiny_overrides, "epochs": 3}), resume_dir=run_dir)
    first, resumed = offline_runs(run_dir)
    assert first == offline
    continued = read_offline_run(resumed)
    assert continued["run"]["run_id"] == run_id
    assert [row["epoch"] for row in continued["history"] if "epoch" in row and "verify/roc._type" not in row] == [3]


@pytest.mark.parametrize("tracking, wandb_mode, environ, chosen", [
    ("auto", "auto", {}, ("tensorboard",)),  # no key: W&B does not start
    ("auto", "auto", {"WANDB_API_KEY": FAKE_KEY}, ("tensorboard", "wandb")),
    ("auto", "auto", {"WANDB_MODE": "offline"}, ("tensorboard", "wandb")),
    ("auto", "auto", {"WANDB_MODE": "disabled", "WANDB_API_KEY": FAKE_KEY}, ("tensorboard",)),
    ("auto", "offline", {}, ("tensorboard", "wandb")),
    ("auto", "disabled", {"WANDB_API_KEY": FAKE_KEY}, ("tensorboard",)),
    ("wandb", "auto", {}, ("wandb",)),
    ("wandb", "disabled", {}, ()),
    ("tensorboard", "online", {"WANDB_API_KEY": FAKE_KEY}, ("tensorboard",)),
    ("both", "auto", {}, ("tensorboard", "wandb")),
    ("none", "online", {"WANDB_API_KEY": FAKE_KEY}, ()),
])
def test_tracking_choice(no_wandb_key, tracking, wandb_mode, environ, chosen):
    environ = {"HOME": str(no_wandb_key), "NETRC": str(no_wandb_key / ".netrc"), **environ}
    assert chosen_trackers(tracking, wandb_mode, environ)[0] == chosen


def test_recipe_checks_tracking_and_the_trackers_options():
    with pytest.raises(RecipeError, match="--tracking='tensorbord'.*Did you mean 'tensorboard'"):
        resolve_recipe("softmax", {"tracking": "tensorbord"})
    recipe = resolve_recipe("softmax", {"callback_args.tensorboard.histogram_freq": 2})
    assert recipe.resolved()["callback_args"]["tensorboard"] == {"histogram_freq": 2, "write_graph": False,
                                                                 "profile_batch": 0}
    with pytest.raises(RecipeError, match="--callback_args.tensorboard: callback 'tensorboard' is not in"):
        resolve_recipe("softmax", {"tracking": "none", "callback_args.tensorboard.histogram_freq": 2})


@pytest.mark.slow
def test_disabled_writes_nothing_wandb_related(no_wandb_key, tiny_overrides):
    run_dir = train(resolve_recipe("softmax", {**tiny_overrides, "wandb": "disabled"}))
    for root in (run_dir, str(no_wandb_key)):
        for folder, names, files in os.walk(root):
            assert not [name for name in names + files if "wandb" in name.lower()], folder
    assert read_state(latest_checkpoint(run_dir))["wandb_run_id"] is None
    baseline, row = read_history(os.path.join(run_dir, "history.jsonl"))
    assert row["images_per_second"] > 0


@pytest.mark.slow
def test_no_api_key_is_written_into_the_run_folder(no_wandb_key, tiny_overrides, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert resolve_mode("auto") == "online"  # the key is seen...
    monkeypatch.setenv("WANDB_MODE", "offline")  # ...but this test must not go online
    assert resolve_mode("auto") == "offline"
    run_dir = train(resolve_recipe("softmax", tiny_overrides))
    assert offline_runs(run_dir), "the run should have been tracked (offline)"
    checked = 0
    for folder, _, files in os.walk(run_dir):
        for name in files:
            with open(os.path.join(folder, name), "rb") as file:
                assert FAKE_KEY.encode() not in file.read(), os.path.join(folder, name)
            checked += 1
    assert checked > 10
