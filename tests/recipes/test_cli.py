"""The command line, run as users run it: `python -m recipes ...` in a subprocess."""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(*args, cwd=None, env=None):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "recipes", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=environment, timeout=600)


def test_list_prints_every_registry_and_entry():
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(
        [sys.executable, "-c", "import json, recipes; from registry import ALL_REGISTRIES; "
                               "print(json.dumps({r.name: r.names() for r in ALL_REGISTRIES}))"],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    registries = json.loads(listing.stdout.strip().splitlines()[-1])
    assert {"backbones", "heads", "losses", "callbacks", "datasets", "recipes"} <= set(registries)
    for registry, names in registries.items():
        assert f"{registry} ({len(names)}):" in result.stdout
        for name in names:
            assert f"  {name} " in result.stdout


def test_show_prints_the_resolved_recipe_with_overrides():
    result = run_cli("show", "arcface", "--epochs=3.0", "--lr=1e-2", "--loss_args.margin2=0.5")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["epochs"] == 3 and shown["lr"] == 0.01 and shown["loss_args"] == {"margin2": 0.5}


def test_unknown_field_fails_fast_with_close_fields():
    started = time.time()
    result = run_cli("run", "softmax", "--epochs=1", "--nonexistent=3")
    assert time.time() - started < 15
    assert result.returncode == 2
    assert "nonexistent" in result.stderr and "Known:" in result.stderr
    assert "Traceback" not in result.stderr


def test_misspelt_backbone_suggests_tiny():
    result = run_cli("run", "softmax", "--backbone=tinny")
    assert result.returncode == 2 and "Did you mean 'tiny'" in result.stderr
