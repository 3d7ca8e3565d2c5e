"""Keras callbacks of a training run, registered by name in `registry.CALLBACKS`.

A callback entry is a `keras.callbacks.Callback` subclass, built with its options
(`--callback_args.NAME.OPTION=VALUE`), or a factory returning one, a list of them (as `tracking`
builds) or None when it does not apply (e.g. on a worker that is not the chief); a factory with a
`context` parameter gets the run's `RunContext`. The built-in callbacks are declared in
`registry/manifest.py` and imported when built.
"""
