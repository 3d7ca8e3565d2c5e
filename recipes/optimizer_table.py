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


def keras_series(version):
    """'3.15' of '3.15.1' (None for None): Keras changes optimizer signatures between minor releases, not patches."""
    return ".".join(str(version).split(".")[:2]) if version else None


def manifest_fits_installed_keras():
    """True if the installed Keras is of the series `registry/manifest.py` read its optimizers from."""
    return keras_series(installed_keras_version()) == keras_series(manifest.KERAS_VERSION)


@functools.cache
def optimizer_table():
    """{name: {option: default}} of every optimizer `recipes.optimizers.build_optimizer` builds.

    From `registry/manifest.py` when the installed Keras is of the series it was written with; with
    another Keras (whose optimizers differ) read from Keras itself, which imports TensorFlow.
    """
    if manifest_fits_installed_keras():
        return manifest.OPTIMIZERS
    from recipes.optimizers import optimizer_classes, optimizer_options  # imports Keras: only with another series

    return {name: optimizer_options(name) for name in sorted(optimizer_classes())}
