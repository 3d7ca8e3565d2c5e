"""The index of an identity folder, cached as gzip'd JSON so millions of files are listed once.

The index maps each identity sub-folder to its mtime (ns), its image file names and its bad
files with reasons. A folder's mtime changes whenever an entry in it is added, removed or
renamed, so a later scan rescans only folders whose mtime differs (or that are new) and
drops removed ones. A file rewritten in place keeps its folder's mtime: `data.folders`
re-checks every skipped file (and re-lists every folder that could not be listed) on each
load, as they are few; a good file rewritten in place is not noticed here (that would cost a
stat per file) but fails at decode time in the training pipeline, which names it. Delete the
index file (or pass `cache=False`) to force a full rescan.

Where: `<cache dir>/<sha256 of the absolute path of ROOT>.json.gz` with `<cache dir>` =
`$FACES_INDEX_DIR`, else `$XDG_CACHE_HOME/faces-index`, else `~/.cache/faces-index`. Nothing
is ever written into the data folder itself (it may be read-only or shared with other tools).

Format (no pickle): {"format": "faces-index", "version": 1, "identities": {name: {"mtime_ns":
int or null, "files": "a.jpg/b.jpg", "skipped": [[name, reason], ...]}}}. File names are
joined with "/" (never part of a file name) because one string per folder loads much faster
than one JSON string per file. `mtime_ns` is null for a folder changed too recently to trust.
"""
import dataclasses
import gzip
import hashlib
import json
import os
from typing import Optional

from storage.atomic import write_bytes


FORMAT_NAME = "faces-index"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class IdentityEntry:
    """One identity sub-folder: `files` (sorted image names), `skipped` ((name, reason), ...)."""

    mtime_ns: Optional[int]
    files: tuple
    skipped: tuple = ()


def default_cache_dir():
    """`$FACES_INDEX_DIR`, else `$XDG_CACHE_HOME/faces-index`, else `~/.cache/faces-index`."""
    if os.environ.get("FACES_INDEX_DIR"):
        return os.environ["FACES_INDEX_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "faces-index")


def index_locations(root, cache_dir=None):
    """Where the index of `root` lives: `[<cache_dir or default_cache_dir()>/<hash of abspath>.json.gz]`."""
    return [cache_path(root, cache_dir)]


def cache_path(path, cache_dir=None, suffix=".json.gz"):
    """`<cache_dir or default_cache_dir()>/<sha256 of the absolute path, 24 hex digits><suffix>`."""
    digest = hashlib.sha256(os.path.abspath(os.fspath(path)).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return os.path.join(cache_dir or default_cache_dir(), f"{digest}{suffix}")


def load_index(root, cache_dir=None):
    """({identity name: IdentityEntry}, path it came from) of the first readable index; ({}, None) if none."""
    for path in index_locations(root, cache_dir):
        entries = _read(path, os.path.abspath(os.fspath(root)))
        if entries is not None:
            return entries, path
    return {}, None


def save_index(root, entries, cache_dir=None):
    """Write `entries` to the first writable location (atomically); the path, or None if none was writable."""
    content = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "root": os.path.abspath(os.fspath(root)),
        "identities": {
            name: {"mtime_ns": entry.mtime_ns, "files": "/".join(entry.files),
                   "skipped": [list(item) for item in entry.skipped]}
            for name, entry in sorted(entries.items())
        },
    }
    encoded = gzip.compress(json.dumps(content, separators=(",", ":")).encode("utf-8", "surrogateescape"), 1)
    for path in index_locations(root, cache_dir):
        try:

            write_bytes(path, encoded)
            return path
        except OSError:
            continue
    return None


def _read(path, absolute_root):
    """The entries stored at `path`, or None if it is missing, unreadable, of another version or another folder."""
    try:
        with open(path, "rb") as file:
            content = json.loads(gzip.decompress(file.read()).decode("utf-8", "surrogateescape"))
    except (OSError, EOFError, ValueError):
        return None
    if not isinstance(content, dict):
        return None
    if (content.get("format"), content.get("version")) != (FORMAT_NAME, FORMAT_VERSION):
        return None
    if content.get("root") != absolute_root:
        return None
    try:
        return {
            name: IdentityEntry(item["mtime_ns"], tuple(item["files"].split("/")) if item["files"] else (),
                                tuple((str(file), str(reason)) for file, reason in item["skipped"]))
            for name, item in content["identities"].items()
        }
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
