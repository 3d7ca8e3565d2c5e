"""The verification callback reports `verification_metrics` of image + horizontal-flip embeddings (insightface's)."""
import io
import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

import backbones
from callbacks.verification import VerificationCallback
from data.bins import load_bin_images, write_bin
from evaluation.verification_metrics import verification_metrics


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_callback_metrics_are_those_of_image_plus_flip_embeddings(tmp_path):
    rng = np.random.default_rng(4)
    faces = rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    faces[1::2] = np.clip(faces[0::2] + rng.normal(0, 40, faces[0::2].shape), 0, 255).astype(np.uint8)  # like pairs
    issame = rng.random(30) < 0.5
    faces[1::2][~issame] = rng.integers(0, 256, (int((~issame).sum()), 32, 32, 3), dtype=np.uint8)
    path = str(tmp_path / "flipped.bin")
    write_bin(path, [_png(face) for face in faces], issame)
    keras.utils.set_random_seed(11)
    embedder = backbones.build_embedding_model("tiny", embedding_size=8, image_size=32)
    images, labels = load_bin_images(path, image_size=32)

    plain = embedder.predict(images.astype(np.float32), verbose=0)
    flipped = embedder.predict(images[:, :, ::-1].astype(np.float32), verbose=0)
    assert np.abs(plain - flipped).max() > 0.1 * np.abs(plain).max()  # the embedding changes under a flip
    expected = verification_metrics(plain + flipped, labels)
    without_flip = verification_metrics(plain, labels)
    assert any(expected[key] != pytest.approx(without_flip[key], abs=1e-6) for key in ("roc_auc", "best_threshold"))

    callback = VerificationCallback([path], embedder, batch_size=16, image_size=32, evaluate_before_training=False)
    logs = {}
    callback.on_epoch_end(0, logs)
    for key in ("acc", "acc_std", "threshold", "best_acc", "best_threshold", "roc_auc", "tar_at_far_1e-3"):
        assert logs[f"flipped/{key}"] == pytest.approx(expected[key], abs=1e-5), key
    assert logs["flipped/xnorm"] == pytest.approx(float(np.linalg.norm(plain, axis=1).mean()), rel=1e-5)


def test_every_metric_the_verification_logs_is_one_early_stopping_may_monitor(softmax_run):
    from callbacks.options import VERIFICATION_METRICS

    with open(os.path.join(softmax_run, "history.jsonl")) as file:
        logged = {key.rsplit("/", 1)[1] for key in json.loads(file.readlines()[-1]) if "/" in key}
    assert logged == set(VERIFICATION_METRICS)
