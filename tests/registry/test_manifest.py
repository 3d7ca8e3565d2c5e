"""`registry/manifest.py` declares exactly what the live built-in implementations register, so it cannot go stale."""
import inspect

import pytest

from recipes import optimizer_table
from recipes.optimizers import optimizer_classes, optimizer_options
from registry import ALL_REGISTRIES, import_builtins, manifest
from registry.write_manifest import MANIFEST, _literal, _options, manifest_sections, manifest_text


def test_the_manifest_is_what_the_live_implementations_declare():
    with open(MANIFEST, encoding="utf-8") as file:
        written = file.read()
    live = manifest_sections()
    if not optimizer_table.manifest_fits_installed_keras():  # another Keras: its optimizers are read live (next test)
        live.update(OPTIMIZERS={name: _options(name, options) for name, options in manifest.OPTIMIZERS.items()},
                    KERAS_VERSION=manifest.KERAS_VERSION)
    assert manifest_text(live) == written, "registry/manifest.py is out of date: run `python -m registry.write_manifest`."


def test_the_optimizer_options_are_the_installed_keras_ones(monkeypatch):
    live = {name: optimizer_options(name) for name in optimizer_classes()}
    optimizer_table.optimizer_table.cache_clear()
    assert optimizer_table.optimizer_table() == live
    assert optimizer_table.keras_series("3.15.1") == "3.15" and optimizer_table.keras_series(None) is None
    monkeypatch.setattr(manifest, "KERAS_VERSION", "2.0.0")  # a Keras the manifest was not written with
    optimizer_table.optimizer_table.cache_clear()
    try:
        assert optimizer_table.optimizer_table() == live and optimizer_table.optimizer_table() is not manifest.OPTIMIZERS
    finally:
        optimizer_table.optimizer_table.cache_clear()


def test_import_builtins_registers_every_declared_entry_from_its_module():
    import_builtins()
    tables = {table.name: table for table in ALL_REGISTRIES}
    for name, rows in manifest.ENTRIES.items():
        for row in rows:
            assert not tables[name].is_declared(row["name"]), f"{name} {row['name']!r}"
            assert tables[name].get(row["name"]).__module__ == row["module"]
    assert all(not table.is_declared(entry) for table in ALL_REGISTRIES for entry in table.names())


def test_a_default_the_manifest_cannot_write_is_refused_by_name():
    with pytest.raises(ValueError, match=r"losses entry 'odd': the default of 'initializer' .* is not a Python literal"):
        _literal("losses entry 'odd'", "initializer", object())
    assert repr(_literal("x", "num_classes", inspect.Parameter.empty)) == "REQUIRED"
    assert _literal("x", "input_shape", (112, 112, 3)) == (112, 112, 3)
