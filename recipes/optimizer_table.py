"""The optimizers' names and options, known without importing Keras (so validation and `show` need no TensorFlow)."""
import functools
import importlib.metadata

from registry import manifest


def installed_keras_version():
    """The version of the installed `keras` distribution (read from its metadata), or None."""
    try:
        return importlib.metadata.version("keras")
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def optimizer_table():
    """{name: {option: default}} of every optimizer `recipes.optimizers.build_optimizer` builds.

    From `registry/manifest.py` when the installed Keras is the version it was written with; with
    another Keras (whose optimizers may differ) read from Keras itself, which imports TensorFlow.
    """
    if installed_keras_version() == manifest.KERAS_VERSION:
        return manifest.OPTIMIZERS
    from recipes.optimizers import optimizer_classes, optimizer_options  # imports Keras: only with another version

    return {name: optimizer_options(name) for name in sorted(optimizer_classes())}
