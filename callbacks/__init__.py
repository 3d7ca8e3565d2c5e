"""Keras callbacks of a training run, registered by name in `registry.CALLBACKS`.

A callback entry is a factory `factory(context, **options)` → `keras.callbacks.Callback` (or None
when it does not apply, e.g. on a worker that is not the chief, or a list, as `tracking` builds);
`context` is a `RunContext`.
"""
from callbacks import (  # noqa: F401  (registers the callbacks)
    centers_export, checkpoints, divergence, run_record, tensorboard, throughput, trackers, tracking, verification,
)
