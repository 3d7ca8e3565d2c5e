"""The `Registry` class: a named table of plugins registered by decorator, or declared before they are imported."""
import dataclasses
import difflib
import importlib
import inspect

from registry.errors import UserError
from registry.lazy import import_attribute


class RegistryError(UserError, KeyError):
    """An unknown or duplicate registry key. `str()` is the full message."""

    def __str__(self):
        return self.args[0]


def did_you_mean(key, known):
    """' Did you mean 'a', 'b'?' for the entries of `known` close to `key` (difflib), or ''."""
    close = difflib.get_close_matches(str(key), list(known), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def unknown_message(kind, key, known):
    """The one-sentence refusal of an unknown `key`: what it is, close matches, and every known name."""
    return f"unknown {kind} {key!r}.{did_you_mean(key, known)} Known: {', '.join(sorted(known)) or '(none)'}."


def keyword_options(target, skip=()):
    """{name: default} of the keyword parameters of callable `target`, except `skip`, `self` and **/* ones.

    A parameter without a default maps to `inspect.Parameter.empty`.
    """
    params = inspect.signature(target).parameters
    return {
        key: param.default for key, param in params.items()
        if key not in {"self", *skip} and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
    }


@dataclasses.dataclass(frozen=True)
class Declaration:
    """A built-in entry known before its module is imported (from `registry/manifest.py`).

    module: the module whose import registers the entry. options: {parameter: default} as
    `keyword_options` reads them from the entry (required ones map to `inspect.Parameter.empty`).
    summary: the first line of its docstring. resolver: 'module:name' of the entry's
    `resolve_options` function, in a module that imports no TensorFlow, or None.
    """

    module: str
    options: dict
    summary: str = ""
    resolver: str = None


def _where(obj):
    """'module.qualname (file:line)' of a registered object, for error messages."""
    if isinstance(obj, Declaration):
        return f"the built-in module {obj.module}"
    name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
    try:
        return f"{name} ({inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]})"
    except (TypeError, OSError):
        return name


def _summary(obj):
    return obj.summary if isinstance(obj, Declaration) else (inspect.getdoc(obj) or "").split("\n")[0]


class Registry:
    """Maps names (and aliases) to classes or functions.

    Register with `@REG.register("name", aliases=("alt",))`, `@REG.register()` (uses
    `__name__`) or `REG.register("name", obj)`; look up with `REG.get(name)`, `REG[name]`
    or `REG.build(name, **kwargs)`.

    A built-in entry is first only declared (`declare`): its name, options and summary are known
    without importing its module (which imports TensorFlow); `get` and `build` import the module,
    whose `register` then replaces the declaration with the object.
    """

    def __init__(self, name):
        self.name = name
        self._entries = {}
        self._aliases = {}

    def register(self, name=None, obj=None, *, aliases=()):
        """Register `obj` under `name`; without `obj`, return a decorator."""
        if obj is None and callable(name) and not isinstance(name, str):
            return self.register(None, name, aliases=aliases)

        def add(target):
            key = name or target.__name__
            for new_key in (key, *aliases):
                existing = self._lookup(new_key)
                if existing is not None and not _declared_by(existing, target):
                    raise RegistryError(
                        f"{self.name}: '{new_key}' is already registered by {_where(existing)}; "
                        f"cannot register {_where(target)} under the same name. Pick another name."
                    )
            self._add(key, target, aliases)
            return target

        return add if obj is None else add(obj)

    def declare(self, name, module, options, *, aliases=(), summary="", resolver=None):
        """Declare built-in entry `name`, registered when `module` is imported (see `Declaration`)."""
        self.register(name, Declaration(module, dict(options), summary, resolver), aliases=aliases)

    def _add(self, key, target, aliases):
        self._entries[key] = target
        for alias in aliases:
            self._aliases[alias] = key

    def _lookup(self, key):
        key = self._aliases.get(key, key)
        return self._entries.get(key)

    def _entry(self, name):
        """The registered object or declaration of `name`; RegistryError naming close matches if unknown."""
        found = self._lookup(name) if isinstance(name, str) else None
        if found is None:
            hint = did_you_mean(name, self.names() + sorted(self._aliases))
            raise RegistryError(
                f"{self.name}: no entry named {name!r}.{hint} "
                f"Known {self.name}: {', '.join(self.names()) or '(none)'}."
            )
        return found

    def get(self, name):
        """The object registered as `name` (or an alias of it); imports a declared entry's module."""
        found = self._entry(name)
        if isinstance(found, Declaration):
            importlib.import_module(found.module)
            found = self._lookup(name)
            if isinstance(found, Declaration):
                raise LookupError(f"{self.name}: importing {found.module} did not register {name!r}: "
                                  "registry/manifest.py is stale; rewrite it with `python -m registry.write_manifest`.")
        return found

    __getitem__ = get

    def build(self, name, **kwargs):
        """Call the object registered as `name` with `kwargs`."""
        return self.get(name)(**kwargs)

    def options(self, name, skip=()):
        """{option: default} that the entry `name` accepts as keywords, except `skip` (the caller's own).

        A declared entry answers from its declaration, without importing its module.
        """
        found = self._entry(name)
        if isinstance(found, Declaration):
            return {key: value for key, value in found.options.items() if key not in skip}
        return keyword_options(found, skip)

    def resolve_options(self, name, options):
        """`options` (a dict) as entry `name` will use them, from its `resolve_options` function if it has one
        (e.g. the margins a loss's preset picks); computed without importing a declared entry's module."""
        found = self._entry(name)
        if isinstance(found, Declaration):
            resolve = import_attribute(found.resolver) if found.resolver else None
        else:
            resolve = getattr(found, "resolve_options", None)
        return resolve(dict(options)) if resolve else dict(options)

    def drop_declarations(self):
        """Forget every entry still only declared (`registry.write_manifest` starts from live registrations alone,
        so that a stale declaration cannot clash with the module that now registers its name)."""
        declared = [key for key, entry in self._entries.items() if isinstance(entry, Declaration)]
        for key in declared:
            del self._entries[key]
        self._aliases = {alias: key for alias, key in self._aliases.items() if key not in declared}

    def import_declared(self):
        """Import the module of every entry still only declared (as `import` of every built-in did before)."""
        for key in self.names():
            self.get(key)

    def canonical(self, name):
        """The registered name behind `name` (resolves aliases; raises if unknown)."""
        self._entry(name)
        return self._aliases.get(name, name)

    def names(self):
        """Sorted registered names (without aliases)."""
        return sorted(self._entries)

    def aliases(self, name):
        """The aliases of the entry registered as `name`, sorted."""
        return sorted(alias for alias, key in self._aliases.items() if key == name)

    def is_declared(self, name):
        """True while entry `name` is only declared (its module not imported yet)."""
        return isinstance(self._entry(name), Declaration)

    def __contains__(self, name):
        return isinstance(name, str) and self._lookup(name) is not None

    def __iter__(self):
        return iter(self.names())

    def __len__(self):
        return len(self._entries)

    def __repr__(self):
        rows = []
        for key in self.names():
            alias = ", ".join(self.aliases(key))
            rows.append((key + (f" ({alias})" if alias else ""), _summary(self._entries[key])))
        width = max([len(r[0]) for r in rows] + [4])
        lines = [f"{self.name} ({len(rows)}):"] + [f"  {k.ljust(width)}  {d}".rstrip() for k, d in rows]
        return "\n".join(lines)


def _declared_by(existing, target):
    """True when `target`, from the module a declaration names, is what `existing` declared."""
    return isinstance(existing, Declaration) and getattr(target, "__module__", None) == existing.module
