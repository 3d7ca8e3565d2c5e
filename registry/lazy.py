"""Names imported on first use: a package stays light to import (no TensorFlow) while it re-exports heavy names."""
import importlib


def import_attribute(reference):
    """The object named by `reference`, 'package.module:name'."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def lazy_attributes(package, sources):
    """A module-level `__getattr__` for `package` that imports module `sources[name]` on the first use of `name`.

    Lets a package re-export names of its modules that import TensorFlow while `import package`
    itself stays light (the command line's `list`, `show` and `--help` import the packages).
    """

    def __getattr__(name):
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(sources[name]), name)

    return __getattr__
