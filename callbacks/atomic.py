"""Atomic file writes: a crash, kill or full disk leaves the old file or the new one, never a torn one."""
import json
import os
import tempfile


def fsync_directory(folder):
    """fsync a folder, so a rename inside it survives a power loss."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write(path, write, suffix=""):
    """Call `write(temp_path)`, fsync it, then rename it over `path` (same folder, so the rename is atomic)."""
    folder = os.path.dirname(os.path.abspath(path))
    descriptor, temp_path = tempfile.mkstemp(prefix=".tmp-", suffix=suffix or os.path.splitext(path)[1], dir=folder)
    os.close(descriptor)
    try:
        write(temp_path)
        with open(temp_path, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temp_path, path)
        fsync_directory(folder)
    finally:
        if os.path.exists(temp_path):
            os.remove(temp_path)


def write_json(path, value):
    """`value` as indented JSON at `path`, atomically."""

    def write(temp_path):
        with open(temp_path, "w") as file:
            json.dump(value, file, indent=2, sort_keys=True)
            file.write("\n")

    atomic_write(path, write)


def save_model(model, path):
    """`model.save(path)` (a `.keras` file), atomically."""
    atomic_write(path, model.save, suffix=".keras")
