"""Load a user's plugin files or modules, so their `@LOSSES.register(...)` etc. take effect."""
import importlib
import importlib.util
import os
import sys

from recipes.recipe import parse_list


class PluginError(ValueError):
    """A `--plugins` entry that is neither a `.py` file nor an importable module."""


def load_plugin(target):
    """Import `target` (a path to a `.py` file, or an importable module name) once."""
    if target.endswith(".py") or os.sep in target:
        if not os.path.isfile(target):
            raise FileNotFoundError(f"plugin file {target!r} does not exist; pass the path of a .py file or a module name.")
        name = "plugin_" + os.path.splitext(os.path.basename(target))[0]
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, os.path.abspath(target))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as error:
        if error.name is None or not (target == error.name or target.startswith(error.name + ".")):
            raise PluginError(f"plugin module {target!r} was found but imports {error.name!r}, which is not "
                              f"installed: {error}.") from error
        raise PluginError(
            f"--plugins={target!r}: there is no module named {error.name!r} (and no such .py file); pass the path of "
            "a .py file (e.g. --plugins=my_losses.py) or the name of a module importable from here (on PYTHONPATH)."
        ) from None


def load_plugins(plugins):
    """Load every entry of `plugins` (a list, or a "[a,b]" / "a,b" string) with `load_plugin`."""
    for plugin in parse_list(plugins or []):
        load_plugin(plugin)
