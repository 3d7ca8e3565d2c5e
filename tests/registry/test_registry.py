import importlib
import sys

import pytest

from registry import (ALL_REGISTRIES, BACKBONES, CALLBACKS, DATASETS, HEADS, LOSSES, RECIPES, SCHEDULES, Registry,
                      RegistryError, lazy_attributes)


def test_register_by_decorator_and_call():
    registry = Registry("widgets")

    @registry.register("round", aliases=("circle",))
    def round_widget(size=1):
        """A round widget."""
        return ("round", size)

    registry.register("square", lambda size=1: ("square", size))

    @registry.register()
    def plain():
        return "plain"

    assert registry.names() == ["plain", "round", "square"]
    assert registry.get("circle") is round_widget
    assert registry["round"] is round_widget
    assert registry.build("round", size=3) == ("round", 3)
    assert registry.build("square", size=2) == ("square", 2)
    assert "circle" in registry and "triangle" not in registry and 3 not in registry
    assert list(registry) == ["plain", "round", "square"]
    assert len(registry) == 3
    assert registry.canonical("circle") == "round"


def test_unknown_key_names_registry_key_close_matches_and_known():
    registry = Registry("losses")
    for name in ("softmax", "arcface", "center_softmax"):
        registry.register(name, object)
    with pytest.raises(RegistryError) as caught:
        registry.get("arcfce")
    message = str(caught.value)
    assert "losses" in message and "'arcfce'" in message
    assert "Did you mean 'arcface'" in message
    assert "Known losses: arcface, center_softmax, softmax." in message


def test_unknown_key_without_close_match_lists_known_names():
    registry = Registry("heads")
    registry.register("norm_dense", object)
    message = str(pytest.raises(RegistryError, registry.get, "zzz").value)
    assert "Did you mean" not in message and "Known heads: norm_dense" in message


def test_duplicate_name_names_both_definitions():
    registry = Registry("backbones")

    @registry.register("net")
    def first():
        pass

    with pytest.raises(RegistryError) as caught:

        @registry.register("net")
        def second():
            pass

    message = str(caught.value)
    assert "'net' is already registered" in message
    assert "first" in message and "second" in message and "test_registry.py" in message


def test_duplicate_alias_is_refused():
    registry = Registry("things")
    registry.register("a", object, aliases=("b",))
    with pytest.raises(RegistryError, match="'b' is already registered"):
        registry.register("b", int)


def test_repr_is_a_table_of_names_aliases_and_first_doc_line():
    registry = Registry("recipes")

    def softmax():
        """Softmax recipe.

        More text."""

    registry.register("softmax", softmax, aliases=("sm",))
    text = repr(registry)
    assert text.splitlines()[0] == "recipes (1):"
    assert "softmax (sm)" in text and "Softmax recipe." in text and "More text" not in text


def test_project_registries_are_populated():
    assert {r.name for r in ALL_REGISTRIES} >= {"backbones", "heads", "losses", "callbacks", "datasets", "recipes"}
    assert {"tiny", "resnet50v2", "resnet101v2", "mobilenetv2"} <= set(BACKBONES.names())
    assert "norm_dense" in HEADS
    assert {"softmax", "arcface", "center", "center_softmax", "center_arcface"} <= set(LOSSES.names())
    assert {"softmax", "arcface", "cosface", "center_softmax", "center_arcface"} <= set(RECIPES.names())
    assert {"constant_then_exponential", "polynomial", "cosine", "step"} <= set(SCHEDULES.names())
    assert {"verification", "checkpoint", "tracking", "run_record", "nan_guard", "centers_export", "throughput",
            "early_stopping"} <= set(CALLBACKS.names())
    assert {"synthetic", "folder"} <= set(DATASETS.names())


def test_did_you_mean_and_unknown_message_are_the_one_suggestion_helper():
    from registry import did_you_mean, unknown_message

    assert did_you_mean("arcfase", ["arcface", "cosface", "softmax"]) == " Did you mean 'arcface', 'cosface'?"
    assert did_you_mean("zzz", ["arcface"]) == ""
    assert unknown_message("loss", "sofmax", {"softmax", "center"}) == (
        "unknown loss 'sofmax'. Did you mean 'softmax'? Known: center, softmax.")


@pytest.fixture
def widget_modules(tmp_path, monkeypatch):
    """A registry module and a plugin module that registers `round` in it, importable under names unique to the test."""
    suffix = tmp_path.name.replace("-", "_")
    names = {"registry": f"widget_registry_{suffix}", "plugin": f"round_widget_{suffix}",
             "resolver": f"widget_options_{suffix}"}
    (tmp_path / f"{names['registry']}.py").write_text("from registry import Registry\nWIDGETS = Registry('widgets')\n")
    (tmp_path / f"{names['plugin']}.py").write_text(
        f"from {names['registry']} import WIDGETS\n\n"
        "@WIDGETS.register('round', aliases=('circle',))\n"
        "def round_widget(size=1, color='red'):\n    '''A round widget.'''\n    return ('round', size, color)\n")
    (tmp_path / f"{names['resolver']}.py").write_text(
        "def doubled(options):\n    return {**options, 'size': 2 * options['size']}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield names
    for name in names.values():
        sys.modules.pop(name, None)


def test_a_declared_entry_answers_names_options_and_summary_without_importing_its_module(widget_modules):
    widgets = importlib.import_module(widget_modules["registry"]).WIDGETS
    widgets.declare("round", widget_modules["plugin"], {"size": 1, "color": "red"}, aliases=("circle",),
                    summary="A round widget.")
    assert widgets.names() == ["round"] and "circle" in widgets and widgets.canonical("circle") == "round"
    assert widgets.options("round", skip=("color",)) == {"size": 1}
    assert "round (circle)  A round widget." in repr(widgets)
    assert widgets.is_declared("round") and widget_modules["plugin"] not in sys.modules
    assert widgets.build("circle", size=3) == ("round", 3, "red")
    assert widget_modules["plugin"] in sys.modules and not widgets.is_declared("round")
    assert widgets.options("round") == {"size": 1, "color": "red"}


def test_resolve_options_of_a_declared_entry_imports_only_its_resolver(widget_modules):
    widgets = importlib.import_module(widget_modules["registry"]).WIDGETS
    widgets.declare("round", widget_modules["plugin"], {"size": 1}, resolver=f"{widget_modules['resolver']}:doubled")
    assert widgets.resolve_options("round", {"size": 4}) == {"size": 8}
    assert widget_modules["plugin"] not in sys.modules
    widgets.declare("square", widget_modules["plugin"], {})
    assert widgets.resolve_options("square", {"size": 4}) == {"size": 4}


def test_a_declaration_its_module_does_not_register_says_to_rewrite_the_manifest(widget_modules):
    widgets = importlib.import_module(widget_modules["registry"]).WIDGETS
    widgets.declare("square", widget_modules["plugin"], {})
    with pytest.raises(LookupError, match=r"did not register 'square'.*python -m registry.write_manifest"):
        widgets.get("square")
    widgets.declare("oval", widget_modules["plugin"], {}, aliases=("ellipse",))
    widgets.drop_declarations()
    assert widgets.names() == ["round"] and "oval" not in widgets and "ellipse" not in widgets and "circle" in widgets


def test_a_plugin_cannot_take_a_declared_built_in_name(widget_modules):
    widgets = importlib.import_module(widget_modules["registry"]).WIDGETS
    widgets.declare("round", widget_modules["plugin"], {"size": 1})
    built_in = f"'round' is already registered by the built-in module {widget_modules['plugin']}"
    with pytest.raises(RegistryError, match=built_in):
        widgets.register("round", lambda: None)


def test_lazy_attributes_import_a_name_on_first_use(widget_modules):
    getter = lazy_attributes("widgets", {"round_widget": widget_modules["plugin"]})
    assert widget_modules["plugin"] not in sys.modules
    assert getter("round_widget")()[0] == "round"
    with pytest.raises(AttributeError, match="has no attribute 'square'"):
        getter("square")
