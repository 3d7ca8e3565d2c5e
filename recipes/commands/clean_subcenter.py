"""Sub-center ArcFace's cleaning step: list the training images far from their class's dominant sub-centre.

insightface `recognition/subcenter_arcface` (README, steps 1-3, and `drop.py`): train with the
`subcenter` head (k = 3); per class, each image votes for its nearest sub-centre, the one with
most votes is dominant; images whose cosine to it is not above cos(75°) are dropped; train the
next run on what is left. Here the list goes to a TSV file, and optionally into a new identity
folder of symbolic links to the kept images (usable as `--data`, nothing copied).
"""
import csv
import math
import os

import numpy as np
import tensorflow as tf

from storage.atomic import atomic_write
from storage.model_files import load_model_file
from storage.run_folder import RunFolder
from data.folders import scan_identity_folder
from data.decode import decode_face
from heads.subcenter import SubCenterNormDense
from recipes.plugins import load_plugins
from recipes.face_model import FaceTrainingModel

OUTLIERS_FILE = "subcenter_outliers.tsv"


def dominant_subcenter_cosines(embeddings, labels, kernel, k):
    """(cosine to the own class's dominant sub-centre (N,), dominant sub-centre per class (C,)).

    embeddings (N, d), labels int (N,), kernel (d, C·k) with class j's sub-centres in columns
    j·k … j·k + k − 1. As `drop.py`: rows and sub-centres L2-normalised; per class, the dominant
    sub-centre is the one most images are nearest to (ties: the lowest index); a class with no
    images gets 0. float64.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    embeddings = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    kernel = np.asarray(kernel, dtype=np.float64)
    kernel = kernel / np.maximum(np.linalg.norm(kernel, axis=0, keepdims=True), 1e-12)
    centres = kernel.T.reshape(-1, k, kernel.shape[0])  # (C, k, d)
    labels = np.asarray(labels, dtype=np.int64)
    similarity = np.einsum("nd,nkd->nk", embeddings, centres[labels])  # (N, k): to own class's sub-centres
    votes = np.zeros((len(centres), k), dtype=np.int64)
    np.add.at(votes, (labels, similarity.argmax(axis=1)), 1)
    dominant = votes.argmax(axis=1)
    return similarity[np.arange(len(labels)), dominant[labels]], dominant


def embed_images(embedder, paths, image_size, batch_size=128):
    """(embeddings (M, d) float32, indices (M,) into `paths` of the images that decoded), no augmentation."""
    path_table = tf.constant([os.fspath(path) for path in paths])

    def load(index):
        return decode_face(tf.io.read_file(path_table[index]), image_size), index

    dataset = tf.data.Dataset.range(len(paths)).map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    embeddings, indices = [], []
    for images, batch_indices in dataset.ignore_errors().batch(batch_size).prefetch(2):
        embeddings.append(np.asarray(embedder(tf.cast(images, tf.float32), training=False), dtype=np.float32))
        indices.append(batch_indices.numpy())
    if not embeddings:
        raise ValueError(f"none of the {len(paths)} training images could be decoded; check the run's data folder.")
    return np.concatenate(embeddings), np.concatenate(indices)


def find_subcenter_outliers(run_dir, threshold=75.0, out=None, clean_dir=None, batch_size=128):
    """Write the training images of run `run_dir` whose angle to their dominant sub-centre is ≥ `threshold`°.

    Reads `model.keras` (its head must be `subcenter`), the run's data folder and class list
    from `recipe.json` / `classes.json`. Writes `out` (default RUN_DIR/subcenter_outliers.tsv):
    a header, then `path<TAB>identity<TAB>angle_degrees` per dropped image, path relative to the
    data folder. With `clean_dir`, also builds there an identity folder of symbolic links to the
    kept images (identities left with none are left out, as in `drop.py`). Returns a summary dict.
    """
    run = RunFolder(os.fspath(run_dir))
    recipe = run.read_config()
    if not os.path.isfile(run.model_path):
        raise FileNotFoundError(f"{run.model_path!r} does not exist: the run has not finished; clean after it ends.")
    if not 0.0 < float(threshold) < 180.0:
        raise ValueError(f"--threshold={threshold!r} must be an angle in degrees between 0 and 180 (default 75).")
    load_plugins(recipe.get("plugins"))
    model = load_model_file(run.model_path, compile=False)
    if not isinstance(model, FaceTrainingModel) or not isinstance(model.head, SubCenterNormDense):
        raise ValueError(f"{run.model_path!r} was not trained with the 'subcenter' head (recipe head "
                         f"{recipe.get('head')!r}); train with --head=subcenter, e.g. the subcenter_arcface recipe.")
    folder = scan_identity_folder(recipe["data_resolved"], recipe.get("min_images", 1), recipe.get("max_classes"),
                                  progress=False)
    trained_classes = run.read_classes()
    if list(folder.class_names) != trained_classes:
        raise ValueError(f"the identities now in {folder.root!r} differ from the {len(trained_classes or [])} the "
                         f"run trained on ({RunFolder.CLASSES}); clean with the data as it was trained.")
    embeddings, indices = embed_images(model.embedder, folder.paths, int(recipe["image_size"]), int(batch_size))
    labels = np.asarray(folder.labels)[indices]
    cosine, _ = dominant_subcenter_cosines(embeddings, labels, model.head.kernel.numpy(), model.head.k)
    dropped = cosine <= math.cos(math.radians(float(threshold)))  # drop.py keeps cos > cos(threshold)
    angles = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    out = out or run.file(OUTLIERS_FILE)
    rows = [(os.path.relpath(folder.paths[index], folder.root), folder.class_names[label], f"{angle:.2f}")
            for index, label, angle in zip(indices[dropped], labels[dropped], angles[dropped])]

    def write(temp_path):
        with open(temp_path, "w", newline="") as file:
            writer = csv.writer(file, delimiter="\t", lineterminator="\n")
            writer.writerow(("path", "identity", "angle_degrees"))
            writer.writerows(rows)

    atomic_write(out, write)
    if clean_dir:
        _link_kept_images(folder, indices[~dropped], os.fspath(clean_dir))
    return {"images": len(folder), "embedded": len(indices), "dropped": int(dropped.sum()),
            "identities_left": len(set(labels[~dropped].tolist())), "threshold": float(threshold), "out": out,
            "clean_dir": clean_dir}


def _link_kept_images(folder, kept, clean_dir):
    """`clean_dir/<identity>/<image>` → the kept images of `folder` (symbolic links)."""
    if os.path.exists(clean_dir) and os.listdir(clean_dir):
        raise ValueError(f"--clean_dir={clean_dir!r} exists and is not empty; give a new folder.")
    for index in kept:
        source = os.path.abspath(folder.paths[index])
        target = os.path.join(clean_dir, os.path.relpath(source, os.path.abspath(folder.root)))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(source, target)


def format_outliers(summary):
    """The summary of `find_subcenter_outliers` as lines for the console."""
    lines = [f"{summary['dropped']} of {summary['embedded']} images at >= {summary['threshold']:g} degrees from their "
             f"class's dominant sub-centre; listed in {summary['out']}"]
    if summary["embedded"] < summary["images"]:
        lines.append(f"{summary['images'] - summary['embedded']} images could not be decoded and were not judged")
    if summary["clean_dir"]:
        lines.append(f"kept images of {summary['identities_left']} identities linked into {summary['clean_dir']} "
                     f"(train the next run with --data={summary['clean_dir']})")
    return "\n".join(lines)
