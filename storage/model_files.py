"""Loading a saved Keras model file with errors that say what is wrong with it and what to do.

`keras.saving.load_model` says "File not found" for a file that exists but is not a complete
`.keras` zip archive (a text file, a truncated save), and a long TypeError when the model
needs a class from a plugin that is not loaded. `load_model_file` names the file and the
reason instead; `model_file_problem` checks a file without loading it.
"""
import json
import os
import re
import zipfile

import keras

from registry import UserError, import_builtins
from storage.run_folder import RunFolder

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MISSING_CLASS = re.compile(r"Could not locate (?:class|function) '([^']+)'")
MISSING_MODULE = re.compile(r"Full object config: \{'module': '([^']+)'")


RUN_MODEL_NAMES = (RunFolder.BEST_EMBEDDING, RunFolder.EMBEDDING)


def run_model_file(folder):
    """The embedding model of run folder `folder`: its best_embedding.keras, else its embedding.keras;
    FileNotFoundError naming both when it has neither."""
    for name in RUN_MODEL_NAMES:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FileNotFoundError(f"run folder {folder!r} has neither {' nor '.join(RUN_MODEL_NAMES)}; "
                            "pass a finished run's folder or a .keras file.")


class ModelFileError(UserError, ValueError):
    """A model file that cannot be loaded; `str()` names the file, the reason and what to do."""


def model_file_problem(path):
    """Why `path` is not a loadable Keras model file (missing, not a `.keras` zip, not HDF5); None if it looks fine.

    A `.keras` file must be a zip archive with `config.json` (a truncated one has no central
    directory); an `.h5` file must start with the HDF5 signature.
    """
    if not os.path.isfile(path):
        return "the file does not exist"
    if path.endswith(".h5"):
        with open(path, "rb") as file:
            return None if file.read(8) == HDF5_MAGIC else "it is not an HDF5 file"
    if not path.endswith(".keras"):
        return "its name does not end in .keras or .h5"
    if not zipfile.is_zipfile(path):
        return "it is not a complete .keras zip archive (truncated, or another kind of file)"
    with zipfile.ZipFile(path) as archive:
        if "config.json" not in archive.namelist():
            return "the zip archive has no config.json, so it is not a .keras model"
    return None


def load_model_file(path, **options):
    """`keras.saving.load_model(path, **options)`, raising `ModelFileError` for a bad file or a missing plugin class."""
    path = os.fspath(path)
    problem = model_file_problem(path)
    if problem:
        raise ModelFileError(f"{path!r} is not a Keras model file: {problem}. Pass a .keras file written by a run "
                             "(embedding.keras, best_embedding.keras or model.keras).")
    import_builtins()  # the project's layers, losses and schedules a saved model may hold
    try:
        return keras.saving.load_model(path, **options)
    except TypeError as error:
        missing = MISSING_CLASS.search(str(error))
        if missing is None:
            raise
        module = MISSING_MODULE.search(str(error))
        where = f" (module {module.group(1)!r})" if module else ""
        raise ModelFileError(
            f"{path!r} needs the class {missing.group(1)!r}{where}, which is not loaded: it comes from a plugin. "
            f"Pass the file or module that defines it, as when training: {_plugins_hint(path)}."
        ) from None


def _plugins_hint(path):
    """What loads the plugins of the run beside `path`, from its `recipe.json`: `--plugins=[...]` and the plugin
    packages it was trained with; else a generic example."""
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(path)), "recipe.json")) as file:
            stored = json.load(file)
        plugins, packages = stored.get("plugins"), stored.get("plugin_packages")
    except (OSError, ValueError, AttributeError):
        plugins, packages = None, None
    hints = [f"--plugins=[{','.join(plugins)}]"] if plugins else []
    if packages:
        hints.append("the run's plugin packages installed (" + ", ".join(
            f"pip install {package['name']}=={package['version']}" for package in packages) + ")")
    return " with ".join(hints) or "--plugins=path/to/my_plugin.py"
