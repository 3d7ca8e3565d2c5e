"""Load plugins, so their `@LOSSES.register(...)` etc. take effect: a user's `--plugins` files or modules, and
the modules that installed packages name in the `face_recipes.plugins` entry-point group."""
import functools
import importlib
import importlib.metadata
import importlib.util
import os
import sys

from recipes.recipe import parse_list
from registry import UserError

ENTRY_POINT_GROUP = "face_recipes.plugins"


class PluginError(UserError, ValueError):
    """A `--plugins` entry that is neither a `.py` file nor an importable module, or an installed plugin that
    does not import."""


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


def installed_plugin_entry_points():
    """The `face_recipes.plugins` entry points of the installed packages, by package and name (read from
    their metadata: nothing is imported)."""
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                  key=lambda entry: (entry.dist.name if entry.dist else "", entry.name))


def import_entry_point_plugins(entry_points):
    """Import the module each of `entry_points` names; ({"name", "version"}, ...) of their packages, sorted."""
    packages = {}
    for entry in entry_points:
        package = f"{entry.dist.name} {entry.dist.version}" if entry.dist else "an installed package"
        try:
            importlib.import_module(entry.module)
        except (ImportError, UserError) as error:
            raise PluginError(f"{package}: its {ENTRY_POINT_GROUP} entry point {entry.name} = {entry.value} does not "
                              f"load ({type(error).__name__}: {error}); fix or uninstall that package.") from error
        if entry.dist:
            packages[entry.dist.name] = entry.dist.version
    return tuple({"name": name, "version": version} for name, version in sorted(packages.items()))


@functools.cache
def load_installed_plugins():
    """Import every installed package's `face_recipes.plugins` modules, once per process; the packages, as
    ({"name", "version"}, ...) (a run records them in its `recipe.json`)."""
    return import_entry_point_plugins(installed_plugin_entry_points())


def load_plugins(plugins):
    """Load the installed packages' plugins (`load_installed_plugins`), then every entry of `plugins` (a list,
    or a "[a,b]" / "a,b" string) with `load_plugin`."""
    load_installed_plugins()
    for plugin in parse_list(plugins or []):
        load_plugin(plugin)
