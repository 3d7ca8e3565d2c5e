"""One writer per run folder: an exclusive OS file lock on RUN/writer.lock while a process writes the run's record.

Training (new or resumed) and `clean_subcenter` hold it for as long as they write; readers
(`compare`, `eval`, `export`) take none. The lock is `flock(2)` on an open file: the OS drops it
when the file is closed or the process ends in any way (SIGKILL included), so a killed run never
leaves a stale lock. The file itself stays; it holds the last holder's pid, host, start time and
command line, which a refused writer names. (`flock` is not reliable on every network file
system; on one that does not support it at all, a warning says that the folder is unguarded.)
"""
import datetime
import fcntl
import json
import os
import socket
import sys
import time
import warnings

from registry import UserError

LOCK_FILE = "writer.lock"
HOLDER_WAIT_SECONDS = 1.0  # how long a refused writer waits for the new holder to write its name


class RunLocked(UserError):
    """Another process is writing the run folder; the message names it (pid, host, start time, command)."""


class RunLock:
    """The writer lock of one run folder, held from `lock_run_folder` until `release()` or the process's end."""

    def __init__(self, path, descriptor):
        self.path, self._descriptor = path, descriptor

    @property
    def held(self):
        return self._descriptor is not None

    def release(self):
        """Drop the lock (closing the file drops the `flock`); safe to call twice."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()


def lock_run_folder(run_path):
    """Take the exclusive writer lock of the run folder `run_path` without waiting, and record this process in it.

    Raises `RunLocked` naming the holder when another process (or another open of the lock in
    this process) holds it.
    """
    path = os.path.join(os.fspath(run_path), LOCK_FILE)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(descriptor)
        os.close(descriptor)
        raise RunLocked(f"run folder {os.fspath(run_path)!r} is being written by another process ({holder}); "
                        "two writers would interleave its checkpoints and history. Wait until it ends or stop it, "
                        "then run this again. (compare, eval and export may read the folder meanwhile.)") from None
    except OSError as error:  # a file system without flock: keep working, unguarded
        warnings.warn(f"{path}: the file system does not support locks ({error.strerror}); nothing stops a second "
                      "process from writing this run folder at the same time.", stacklevel=2)
        return RunLock(path, descriptor)
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().isoformat(sep=" ", timespec="seconds"),
              "command": " ".join(sys.argv)}
    content = json.dumps(record).encode()
    os.pwrite(descriptor, content, 0)  # then cut: a reader sees the old record, invalid JSON (retries) or this one
    os.ftruncate(descriptor, len(content))
    return RunLock(path, descriptor)


def _read_holder(descriptor):
    """'pid N on HOST, started TIME: COMMAND' from the lock file (waiting briefly for a holder that has just
    taken the lock to write it), or a sentence saying it is unknown."""
    deadline = time.monotonic() + HOLDER_WAIT_SECONDS
    while True:
        try:
            record = json.loads(os.pread(descriptor, 65536, 0).decode() or "null")
        except (OSError, ValueError):
            record = None
        if isinstance(record, dict) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if not isinstance(record, dict):
        return "its pid is not recorded yet"
    command = f": {record['command']}" if record.get("command") else ""
    return f"pid {record.get('pid')} on {record.get('host')}, started {record.get('started')}{command}"
