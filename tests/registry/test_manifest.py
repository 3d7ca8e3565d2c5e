"""`registry/manifest.py` declares exactly what the live built-in implementations register, so it cannot go stale."""
import inspect

import pytest

from registry import ALL_REGISTRIES, import_builtins, manifest
from registry.write_manifest import MANIFEST, _literal, manifest_text


def test_the_manifest_is_what_the_live_implementations_declare():
    with open(MANIFEST, encoding="utf-8") as file:
        written = file.read()
    assert manifest_text() == written, "registry/manifest.py is out of date: run `python -m registry.write_manifest`."


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
