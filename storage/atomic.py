"""Atomic file writes: a crash, kill or full disk leaves the old file or the new one, never a torn one.

Every atomic write of the project goes through `atomic_write`: the content is written to a
temporary name beside the target, fsynced, renamed over the target, and the folder is fsynced.
The temporary file is created by the writer with an ordinary `open` (or `model.save`), so the
result gets the mode an ordinary write would (0666 minus the process umask), not mkstemp's 0600.
"""
import json
import os
import shutil
import tempfile
import uuid


def fsync_file(path):
    """fsync the file at `path`, so its content is on disk before it is renamed into place."""
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def fsync_directory(folder):
    """fsync a folder, so a rename inside it survives a power loss."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write(path, write, suffix=""):
    """Call `write(temp_path)` (it creates the file), fsync it, rename it over `path`, fsync the folder.

    The temporary file `.tmp-<name>.<random><suffix>` lies in the folder of `path` (created if
    missing), so the rename is atomic; it is removed if anything fails. `suffix` defaults to
    the extension of `path` (some writers, such as `model.save`, insist on one).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temp_path = os.path.join(folder, f".tmp-{os.path.basename(path)}.{uuid.uuid4().hex[:12]}"
                                     f"{suffix or os.path.splitext(path)[1]}")
    try:
        write(temp_path)
        fsync_file(temp_path)
        os.replace(temp_path, path)
        fsync_directory(folder)
    finally:
        if os.path.lexists(temp_path):
            os.remove(temp_path)


def write_bytes(path, data):
    """`data` (bytes) at `path`, atomically."""

    def write(temp_path):
        with open(temp_path, "xb") as file:
            file.write(data)

    atomic_write(path, write)


def write_json(path, value):
    """`value` as indented JSON at `path`, atomically."""

    def write(temp_path):
        with open(temp_path, "x") as file:
            json.dump(value, file, indent=2, sort_keys=True)
            file.write("\n")

    atomic_write(path, write)


def save_model(model, path):
    """`model.save(path)` (a `.keras` file), atomically."""
    atomic_write(path, model.save, suffix=".keras")


def atomic_write_directory(path, write):
    """Call `write(temp_folder)` on a fresh folder beside `path`, then swap it in for `path` (e.g. a SavedModel).

    A crash leaves the old folder or the new one under `path`, never a half-written one
    (between the two renames `path` is briefly absent; the old folder is then `.old-*` beside it).
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    temp_folder = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        write(temp_folder)
        for folder, _, files in os.walk(temp_folder):
            for name in files:
                with open(os.path.join(folder, name), "rb+") as file:
                    os.fsync(file.fileno())
        if not os.path.exists(path):
            os.replace(temp_folder, path)
        else:
            old_folder = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.replace(path, os.path.join(old_folder, "previous"))
            try:
                os.replace(temp_folder, path)
            except OSError:
                os.replace(os.path.join(old_folder, "previous"), path)
                raise
            finally:
                shutil.rmtree(old_folder, ignore_errors=True)
        fsync_directory(parent)
    finally:
        shutil.rmtree(temp_folder, ignore_errors=True)


def unwritable_reason(folder):
    """Why files cannot be written into `folder` (created if missing), or None if they can.

    Tries it: an unnamed temporary file is created (and dropped) in the nearest existing folder
    of `folder`, so the answer holds for any user, root included, and any mount option.
    """
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing!r} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"{existing!r} is not writable ({error.strerror or error})"
    return None
