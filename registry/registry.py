"""The `Registry` class: a named table of plugins registered by decorator."""
import difflib
import inspect

from registry.errors import UserError


class RegistryError(UserError, KeyError):
    """An unknown or duplicate registry key. `str()` is the full message."""

    def __str__(self):
        return self.args[0]


def close_matches(key, known):
    """Up to 3 entries of `known` close to `key` (difflib), closest first."""
    return difflib.get_close_matches(str(key), list(known), n=3, cutoff=0.5)


def did_you_mean(key, known):
    """' Did you mean 'a', 'b'?' for the entries of `known` close to `key` (difflib), or ''."""
    close = close_matches(key, known)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def unknown_message(kind, key, known):
    """The one-sentence refusal of an unknown `key`: what it is, close matches, and every known name."""
    return f"unknown {kind} {key!r}.{did_you_mean(key, known)} Known: {', '.join(sorted(known)) or '(none)'}."


def keyword_options(target, skip=()):
    """{name: default} of the keyword parameters of callable `target`, except `skip`, `self` and **/* ones."""
    params = inspect.signature(target).parameters
    return {
        key: param.default for key, param in params.items()
        if key not in {"self", *skip} and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
    }


def where_defined(obj):
    """'module.qualname (file:line)' of a registered object, for error messages."""
    name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
    try:
        return f"{name} ({inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]})"
    except (TypeError, OSError):
        return name


class Registry:
    """Maps names (and aliases) to classes or functions.

    Register with `@REG.register("name", aliases=("alt",))`, `@REG.register()` (uses
    `__name__`) or `REG.register("name", obj)`; look up with `REG.get(name)`, `REG[name]`
    or `REG.build(name, **kwargs)`.
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
                if existing is not None:
                    raise RegistryError(
                        f"{self.name}: '{new_key}' is already registered by {where_defined(existing)}; "
                        f"cannot register {where_defined(target)} under the same name. Pick another name."
                    )
            self._entries[key] = target
            for alias in aliases:
                self._aliases[alias] = key
            return target

        return add if obj is None else add(obj)

    def _lookup(self, key):
        key = self._aliases.get(key, key)
        return self._entries.get(key)

    def get(self, name):
        """The object registered as `name` (or an alias of it)."""
        found = self._lookup(name) if isinstance(name, str) else None
        if found is None:
            hint = did_you_mean(name, self.names() + sorted(self._aliases))
            raise RegistryError(
                f"{self.name}: no entry named {name!r}.{hint} "
                f"Known {self.name}: {', '.join(self.names()) or '(none)'}."
            )
        return found

    __getitem__ = get

    def build(self, name, **kwargs):
        """Call the object registered as `name` with `kwargs`."""
        return self.get(name)(**kwargs)

    def options(self, name, skip=()):
        """{option: default} that the entry `name` accepts as keywords, except `skip` (the caller's own)."""
        return keyword_options(self.get(name), skip)

    def canonical(self, name):
        """The registered name behind `name` (resolves aliases; raises if unknown)."""
        self.get(name)
        return self._aliases.get(name, name)

    def names(self):
        """Sorted registered names (without aliases)."""
        return sorted(self._entries)

    def __contains__(self, name):
        return isinstance(name, str) and self._lookup(name) is not None

    def __iter__(self):
        return iter(self.names())

    def __len__(self):
        return len(self._entries)

    def __repr__(self):
        rows = []
        for key in self.names():
            obj = self._entries[key]
            alias = ", ".join(a for a, k in sorted(self._aliases.items()) if k == key)
            doc = (inspect.getdoc(obj) or "").split("\n")[0]
            rows.append((key + (f" ({alias})" if alias else ""), doc))
        width = max([len(r[0]) for r in rows] + [4])
        lines = [f"{self.name} ({len(rows)}):"] + [f"  {k.ljust(width)}  {d}".rstrip() for k, d in rows]
        return "\n".join(lines)
