"""Plugins from installed packages: a package's `face_recipes.plugins` entry point is loaded by every command,
without `--plugins`, and a run records the package in its `recipe.json`."""
import glob
import json
import os
import re
import textwrap

import pytest

from recipes.commands.cli import main
from recipes.plugins import (PluginError, import_entry_point_plugins, installed_plugin_entry_points,
                             load_installed_plugins)

PACKAGE = textwrap.dedent('''
    """A plugin package: a loss and a plain Keras callback, registered on import."""
    import keras
    from keras import ops

    from losses.base import FaceLoss
    from registry import CALLBACKS, LOSSES


    @LOSSES.register("{loss}")
    @keras.saving.register_keras_serializable(package="{module}")
    class ScaledSoftmax(FaceLoss):
        """Softmax cross-entropy on scale × the NormDense logits."""

        def __init__(self, num_classes, embedding_size, scale=2.0, **kwargs):
            super().__init__(num_classes, embedding_size, **kwargs)
            self.scale = float(scale)

        def call(self, labels, embeddings, logits, training=False):
            return ops.sparse_categorical_crossentropy(labels, self.scale * logits, from_logits=True)

        def get_config(self):
            return {{**super().get_config(), "scale": self.scale}}


    @CALLBACKS.register("{callback}")
    class EpochMarks(keras.callbacks.Callback):
        """Appends the number of each finished epoch to the file `path`."""

        def __init__(self, path="marks.txt"):
            super().__init__()
            self.path = path

        def on_epoch_end(self, epoch, logs=None):
            with open(self.path, "a") as file:
                file.write(f"{{epoch + 1}}\\n")
''')


def install_package(site, distribution, version, module, source):
    """`module` (source text) and its `.dist-info` with a `face_recipes.plugins` entry point, in folder `site`."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[face_recipes.plugins]\nlosses = {module}\n")


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A package `face-recipes-demo` 1.2 on sys.path whose entry point registers a loss and a callback (names unique to
    the test: registrations cannot be undone); the once-per-process loading is reset around the test."""
    suffix = tmp_path.name.replace("-", "_")
    names = {"loss": f"scaled_softmax_{suffix}", "callback": f"epoch_marks_{suffix}", "module": f"demo_plugin_{suffix}"}
    site = tmp_path / "site"
    site.mkdir()
    install_package(site, "face-recipes-demo", "1.2", names["module"], PACKAGE.format(**names))
    monkeypatch.syspath_prepend(str(site))
    load_installed_plugins.cache_clear()
    yield names
    load_installed_plugins.cache_clear()


@pytest.mark.slow
def test_an_installed_packages_loss_lists_trains_and_resumes_without_plugins(installed_plugin, tiny_overrides, tmp_path,
                                                                            capsys):
    loss, callback = installed_plugin["loss"], installed_plugin["callback"]
    main(["list"])
    listing = capsys.readouterr().out
    assert re.search(rf"^  {loss} +Softmax cross-entropy on scale", listing, re.MULTILINE)
    assert re.search(rf"^  {callback} +Appends the number", listing, re.MULTILINE)

    marks = tmp_path / "marks.txt"
    flags = [f"--{key}=[{','.join(value)}]" if isinstance(value, list) else f"--{key}={value}"
             for key, value in tiny_overrides.items()]
    main(["run", "softmax", *flags, f"--loss={loss}", "--loss_args.scale=3", f"--callbacks=+{callback}",
          f"--callback_args.{callback}.path={marks}"])
    (run_dir,) = glob.glob(os.path.join(tiny_overrides["runs_dir"], "*"))
    with open(os.path.join(run_dir, "recipe.json")) as file:
        stored = json.load(file)
    assert stored["loss"] == loss and stored["loss_args"] == {"scale": 3.0} and stored["plugins"] == []
    assert stored["plugin_packages"] == [{"name": "face-recipes-demo", "version": "1.2"}]
    assert marks.read_text().split() == ["1"]

    main(["run", "softmax", f"--resume={run_dir}", "--epochs=2"])
    assert marks.read_text().split() == ["1", "2"]  # the plain Keras callback, with its option, once per epoch


def test_an_installed_plugin_that_does_not_import_is_refused_naming_its_package(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    install_package(site, "face-recipes-broken", "0.3", f"broken_plugin_{tmp_path.name.replace('-', '_')}",
                    "import no_such_module_q\n")
    monkeypatch.syspath_prepend(str(site))
    entries = [entry for entry in installed_plugin_entry_points() if entry.dist.name == "face-recipes-broken"]
    assert [entry.name for entry in entries] == ["losses"]
    with pytest.raises(PluginError, match=r"face-recipes-broken 0.3: its face_recipes.plugins entry point losses = "
                                          r"broken_plugin_.* does not load \(ModuleNotFoundError: .*no_such_module_q"):
        import_entry_point_plugins(entries)
