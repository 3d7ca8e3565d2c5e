"""Fine-tuning an imported ONNX MobileFaceNet from the command line: trains, records the imported model's accuracy
as epoch 0, keeps its BatchNorms, resumes."""
import glob
import os

import keras
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from benchmarks.onnx_graphs import mobilefacenet_graph  # noqa: E402
from recipes.commands.cli import CommandLine  # noqa: E402
from backbones.onnx_import import import_onnx_model  # noqa: E402
from callbacks.verification import VerificationCallback  # noqa: E402
from storage.history import read_history  # noqa: E402


def batchnorm_values(model):
    return [variable.numpy() for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)
            for variable in layer.weights]


def test_run_arcface_from_an_onnx_mobilefacenet_with_the_fine_tuning_options_then_resume(tiny_faces, tmp_path):
    path = str(tmp_path / "mbf.onnx")
    onnx.save(mobilefacenet_graph(units=16, image_size=32), path)  # BatchNorms kept, random non-trivial statistics
    runs_dir = str(tmp_path / "runs")
    options = {"backbone": "mobilefacenet", "backbone_weights": path, "head_init": "class_means", "freeze": "batchnorm",
               "lr_mult.backbone": 0.1, "image_size": 32, "embedding_size": 16, "batch_size": 16,
               "steps_per_epoch": 1, "optimizer": "sgd", "lr": 0.01, "data": tiny_faces.train_dir,
               "eval_bins": f"[{tiny_faces.bin_path}]", "eval_batch_size": 128, "runs_dir": runs_dir, "verbose": 0}
    CommandLine().run("arcface", epochs=1, **options)
    (run_dir,) = glob.glob(os.path.join(runs_dir, "arcface-*"))
    CommandLine().run("arcface", resume=run_dir, epochs=2)

    start = import_onnx_model(path, "mobilefacenet")
    imported = VerificationCallback([tiny_faces.bin_path], start, 128, image_size=32).evaluate()["verify"]
    rows = read_history(os.path.join(run_dir, "history.jsonl"))
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert rows[0]["verify/acc"] == pytest.approx(imported["acc"], abs=1e-9)
    assert all(0.0 <= row["verify/acc"] <= 1.0 and np.isfinite(row["loss"]) for row in rows[1:])

    trained = keras.saving.load_model(os.path.join(run_dir, "embedding.keras"))
    for ours, theirs in zip(batchnorm_values(trained), batchnorm_values(start)):
        np.testing.assert_array_equal(ours, theirs)  # --freeze=batchnorm: statistics, γ and β as imported
    assert not np.array_equal(trained.get_layer("gdc_fc").kernel.numpy(), start.get_layer("gdc_fc").kernel.numpy())
