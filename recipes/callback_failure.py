"""Which callback raised inside `model.fit`, and the sentence that stops the run naming it and what is kept."""
import os

from registry import CALLBACKS
from storage.checkpoints import list_checkpoints


def failing_callback(error, callbacks):
    """The callback of `callbacks` whose method raised `error` (the innermost such frame of its traceback), or None.

    Found by the `self` of each frame: a callback's method, or code it called, raised.
    """
    found, trace = None, error.__traceback__
    while trace is not None:
        owner = trace.tb_frame.f_locals.get("self")
        if any(owner is callback for callback in callbacks):
            found = owner
        trace = trace.tb_next
    return found


def describe_callback(callback, names):
    """`'name' (module.Class)` for a callback built from one of the registered `names`, else `module.Class`."""
    kind = type(callback)
    where = f"{kind.__module__}.{kind.__qualname__}"
    for name in names:
        if name in CALLBACKS and CALLBACKS.get(name) is kind:
            return f"{name!r} ({where})"
    return where


def callback_failure_message(callback, error, names, run_path, resume_command):
    """One paragraph: the callback that raised, the error, and what the run folder holds to continue from."""
    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    stop = (f"callback {describe_callback(callback, names)} raised {type(error).__name__}: {first_line} "
            "(its traceback is above); training stopped.")
    done = [epoch for epoch, _ in list_checkpoints(run_path)] if os.path.isdir(run_path) else []
    if not done:
        return (f"{stop} No epoch was checkpointed in {run_path}, so there is nothing to resume: fix the callback "
                "(or leave it out of --callbacks) and start the run again.")
    return (f"{stop} The checkpoint of epoch {done[-1]} in {run_path} is kept: fix the callback (or leave it out of "
            f"--callbacks), then continue with: {resume_command}")
