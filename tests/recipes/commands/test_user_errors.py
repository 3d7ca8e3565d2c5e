"""Mistakes a user makes on the command line end in one sentence naming the value and what to do, not a traceback."""
import io
import json
import sys
import textwrap
import uuid
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

import backbones
import losses
from storage.model_files import model_file_problem
from data.bins import write_bin
from recipes.commands.cli import main
from recipes.face_model import FaceTrainingModel
from recipes.plugins import load_plugin
from registry import HEADS

PLUGIN_SOURCE = textwrap.dedent('''
    import keras
    from keras import ops

    import losses
    from registry import LOSSES


    @LOSSES.register("{name}")
    @keras.saving.register_keras_serializable(package="{name}")
    class SquaredLogits(losses.FaceLoss):
        def call(self, labels, embeddings, logits, training=False):
            return ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
''')


def _run(capsys, *argv):
    """(exit code, stderr) of `python -m recipes *argv`, run in this process."""
    with pytest.raises(SystemExit) as stopped:
        main(list(argv))
    return stopped.value.code, capsys.readouterr().err


def test_a_plugin_module_that_does_not_exist_is_named(capsys):
    code, err = _run(capsys, "show", "softmax", "--plugins=no_such_module_q")
    assert code == 2 and "Traceback" not in err
    assert "--plugins='no_such_module_q': there is no module named 'no_such_module_q'" in err
    assert "pass the path of a .py file" in err


def test_a_plugin_module_that_imports_a_missing_package_names_the_package(tmp_path, monkeypatch, capsys):
    name = f"needs_missing_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import not_installed_dependency_q\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, err = _run(capsys, "show", "softmax", f"--plugins={name}")
    assert code == 2 and f"plugin module '{name}' was found but imports 'not_installed_dependency_q'" in err


def _png(seed):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_eval_of_a_plugin_model_without_plugins_says_which_class_and_to_pass_plugins(tmp_path, capsys):
    suffix = uuid.uuid4().hex[:8]
    plugin = tmp_path / f"my_losses_{suffix}.py"
    plugin.write_text(PLUGIN_SOURCE.format(name=f"squared_{suffix}"))
    load_plugin(str(plugin))
    embedder = backbones.build_embedding_model("tiny", embedding_size=8, image_size=16)
    model = FaceTrainingModel(embedder, HEADS.build("norm_dense", num_classes=3),
                              losses.build_loss(f"squared_{suffix}", 3, 8))
    model.build((None, 16, 16, 3))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model.save(str(run_dir / "model.keras"))
    (run_dir / "recipe.json").write_text(json.dumps({"plugins": [str(plugin)], "plugin_packages": [
        {"name": "face-recipes-demo", "version": "1.2"}]}))
    bin_path = str(tmp_path / "pairs.bin")
    write_bin(bin_path, [_png(index) for index in range(20)], [index % 2 == 0 for index in range(10)])
    # as in a fresh process that was not given --plugins: neither the module nor its Keras registration
    module = sys.modules.pop(f"plugin_my_losses_{suffix}")
    registered = keras.saving.get_custom_objects().pop(f"squared_{suffix}>SquaredLogits")

    code, err = _run(capsys, "eval", f"--model={run_dir / 'model.keras'}", f"--bins=[{bin_path}]")
    assert code == 2 and "Traceback" not in err
    assert "needs the class 'SquaredLogits' (module 'plugin_my_losses_" in err
    assert f"--plugins=[{plugin}] with the run's plugin packages installed (pip install face-recipes-demo==1.2)" in err

    sys.modules[module.__name__] = module  # as after --plugins (loading it again would register it twice)
    keras.saving.get_custom_objects()[f"squared_{suffix}>SquaredLogits"] = registered
    main(["eval", f"--model={run_dir / 'model.keras'}", f"--bins=[{bin_path}]"])
    (row,) = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("pairs ")]
    assert 0 <= float(row[1]) <= 1 and row[-1] == "10"


def test_eval_of_a_file_that_is_not_a_keras_model_says_so(tmp_path, capsys):
    text = tmp_path / "model.keras"
    text.write_text("these are my notes\n")
    code, err = _run(capsys, "eval", f"--model={text}", "--bins=[lfw.bin]")
    assert code == 2 and "File not found" not in err
    assert f"{str(text)!r} is not a Keras model file: it is not a complete .keras zip archive" in err

    embedder = backbones.build_embedding_model("tiny", embedding_size=8, image_size=16)
    embedder.save(str(tmp_path / "whole.keras"))
    content = (tmp_path / "whole.keras").read_bytes()
    (tmp_path / "truncated.keras").write_bytes(content[: len(content) // 2])
    assert model_file_problem(str(tmp_path / "whole.keras")) is None
    assert "not a complete .keras zip archive" in model_file_problem(str(tmp_path / "truncated.keras"))
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("readme.txt", "a zip, not a model")
    assert "no config.json" in model_file_problem(str(tmp_path / "other.keras"))
    assert model_file_problem(str(tmp_path / "weights.h5")) == "the file does not exist"
