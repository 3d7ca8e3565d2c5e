"""`eval_ijb`: IJB-B / IJB-C 1:1 verification of a saved model, from insightface's IJB folder layout.

Layout (insightface `recognition/_evaluation_/ijb/`, as `eval_ijbc.py` reads it), for SUBSET = ijbb or ijbc:

    DIR/meta/SUBSET_face_tid_mid.txt        image_name template_id media_id       (one line per image)
    DIR/meta/SUBSET_name_5pts_score.txt     image_name x1 y1 … x5 y5 faceness    (same images, same order)
    DIR/meta/SUBSET_template_pair_label.txt template_id1 template_id2 label      (1 = same identity)
    DIR/loose_crop/image_name               the loose face crops

Each image is aligned to the ArcFace template from its five points (`data.align`), embedded with
its horizontal flip in one compiled call (`evaluation.verification.flip_pair_function`), and the
pairs are scored by `evaluation.ijb.ijb_verification` for the norm/detector/flip variants.
"""
import itertools
import os
import sys
import warnings

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from storage.atomic import atomic_write, write_json
from evaluation.ijb import ijb_verification
from evaluation.roc import IJB_FARS
from evaluation.roc_plot import plot_roc
from evaluation.verification import flip_pair_function
from data.align import LandmarkError, alignment_matrix, projective_parameters, template_points, warp_to_aligned
from data.decode import decode_rgb
from data.pipeline import file_problem
from registry import MissingFileError, UserError

SUBSETS = ("IJBB", "IJBC")
VARIANTS = tuple(itertools.product((True, False), repeat=3))
"""(use_norm_score, use_detector_score, flip) of every variant, insightface's default (all True) first."""


class IjbFormatError(UserError, ValueError):
    """An IJB folder that cannot be evaluated: a meta file that does not parse, files that disagree, an empty
    image, an unknown subset; the message names the file and line."""


def variant_name(use_norm_score, use_detector_score, flip):
    """'N1D1F1'-style name: N = feature norm kept as weight, D = detector score weight, F = flip embedding added."""
    return f"N{int(use_norm_score)}D{int(use_detector_score)}F{int(flip)}"


def meta_path(ijb_dir, subset, suffix):
    """DIR/meta/<subset lower>_<suffix>.txt; MissingFileError saying what the layout must be when it is missing."""
    path = os.path.join(ijb_dir, "meta", f"{subset.lower()}_{suffix}.txt")
    if not os.path.isfile(path):
        raise MissingFileError(
            f"{path!r} does not exist. --ijb must be an IJB folder in insightface's layout (meta/"
            f"{subset.lower()}_face_tid_mid.txt, meta/{subset.lower()}_template_pair_label.txt, "
            f"meta/{subset.lower()}_name_5pts_score.txt, loose_crop/), e.g. IJB_release/{subset} as insightface "
            "distributes it.")
    return path


def _read_rows(path, columns, convert):
    """The whitespace-split lines of `path` as a list of tuples `convert(fields)`; errors name the line."""
    rows = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != columns:
                raise IjbFormatError(f"{path}, line {number}: expected {columns} fields, got {len(fields)}: "
                                     f"{line.strip()[:120]!r}. Is this the right meta file?")
            try:
                rows.append(convert(fields))
            except ValueError:
                raise IjbFormatError(f"{path}, line {number}: cannot read the numbers in {line.strip()[:120]!r}."
                                     ) from None
    if not rows:
        raise IjbFormatError(f"{path} has no lines.")
    return rows


def read_pairs(path):
    """(template1 (P,), template2 (P,), label (P,)) int64 of a `_template_pair_label.txt` file (fast path: np.loadtxt)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # loadtxt warns on an empty file; refused below
            table = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except ValueError:
        table = np.array(_read_rows(path, 3, lambda fields: tuple(int(field) for field in fields)), dtype=np.int64)
    if table.size == 0:
        raise IjbFormatError(f"{path} holds no pairs; expected lines 'template_id1 template_id2 label'.")
    if table.ndim != 2 or table.shape[1] != 3:
        raise IjbFormatError(f"{path}: expected lines 'template_id1 template_id2 label', got a table of shape "
                             f"{table.shape}.")
    bad = np.flatnonzero(~np.isin(table[:, 2], (0, 1)))
    if bad.size:
        raise IjbFormatError(f"{path}: labels must be 0 or 1, found {np.unique(table[:, 2])[:10].tolist()}; the first "
                             f"is pair {bad[0] + 1}: {' '.join(str(value) for value in table[bad[0]])!r}.")
    return table[:, 0], table[:, 1], table[:, 2]


def read_ijb_meta(ijb_dir, subset):
    """{'names', 'templates', 'medias', 'landmarks' (N, 5, 2), 'faceness' (N,), 'pairs': (t1, t2, label)}.

    Checks every line's fields, that both per-image files list the same images in the same order
    (insightface pairs them by line), that labels are 0/1 and that every template of the pair
    list has an image in the face list; raises IjbFormatError naming the file and line.
    """
    subset = subset.upper()
    if subset not in SUBSETS:
        raise IjbFormatError(f"--subset={subset!r}: choose IJBB or IJBC.")
    faces = _read_rows(meta_path(ijb_dir, subset, "face_tid_mid"), 3,
                       lambda fields: (fields[0], int(fields[1]), int(fields[2])))
    points_path = meta_path(ijb_dir, subset, "name_5pts_score")
    points = _read_rows(points_path, 12, lambda fields: (fields[0], [float(value) for value in fields[1:]]))
    pairs = read_pairs(meta_path(ijb_dir, subset, "template_pair_label"))
    if len(points) != len(faces):
        raise IjbFormatError(f"{points_path} lists {len(points)} images but {subset.lower()}_face_tid_mid.txt "
                             f"lists {len(faces)}; both must list the same images in the same order.")
    for index, ((face_name, *_), (point_name, _)) in enumerate(zip(faces, points)):
        if face_name != point_name:
            raise IjbFormatError(f"line {index + 1}: {subset.lower()}_face_tid_mid.txt names {face_name!r} but "
                                 f"{os.path.basename(points_path)} names {point_name!r}; both must list the same "
                                 "images in the same order.")
    values = np.array([numbers for _, numbers in points], dtype=np.float64)
    landmarks = values[:, :10].reshape(-1, 5, 2)
    bad = np.flatnonzero(~np.all(np.isfinite(values), axis=1))
    if bad.size:
        raise IjbFormatError(f"{points_path}, line {bad[0] + 1}: landmarks or score are not finite numbers: "
                             f"{values[bad[0]].tolist()}.")
    templates = np.array([row[1] for row in faces], np.int64)
    _check_pair_templates(pairs, templates, meta_path(ijb_dir, subset, "template_pair_label"))
    return {"names": [name for name, _, _ in faces], "templates": templates,
            "medias": np.array([row[2] for row in faces], np.int64), "landmarks": landmarks,
            "faceness": values[:, 10], "pairs": pairs}


def _check_pair_templates(pairs, templates, pairs_path):
    """IjbFormatError naming the first pair whose template has no image in the face list."""
    known = np.unique(templates)
    for column in (0, 1):
        absent = ~np.isin(pairs[column], known)
        if absent.any():
            first = int(np.flatnonzero(absent)[0])
            missing = np.unique(pairs[column][absent])
            raise IjbFormatError(
                f"{pairs_path}, pair {first + 1}: template {int(pairs[column][first])} has no image in the face list "
                f"({missing.size} template id(s) of the pair list are absent, e.g. {missing[:5].tolist()}); the pair "
                "list and the face list must come from the same IJB subset.")


def image_paths(ijb_dir, names):
    """DIR/loose_crop/<name> for every name; MissingFileError naming the missing ones and their count,
    IjbFormatError naming the empty (0-byte) ones."""
    folder = os.path.join(ijb_dir, "loose_crop")
    paths = [os.path.join(folder, name) for name in names]
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise MissingFileError(
            f"{len(missing)} of {len(paths)} images named in the meta files are not in {folder!r}, e.g. "
            f"{', '.join(repr(path) for path in missing[:3])}. Unpack the whole loose_crop archive of the subset "
            "there.")
    empty = [path for path in paths if os.path.getsize(path) == 0]
    if empty:
        raise IjbFormatError(
            f"{len(empty)} of {len(paths)} images in {folder!r} are empty (0 bytes), e.g. "
            f"{', '.join(repr(path) for path in empty[:3])}; replace them with the files from the distributed archive.")
    return paths


def alignment_parameters(landmarks, names, size):
    """(N, 8) `projective_parameters` of every image; an IjbFormatError names the image whose points are unusable.

    A model size the ArcFace template does not scale to is refused first (`data.align.AlignmentError`)."""
    template_points(size)
    parameters = np.empty((len(landmarks), 8), np.float32)
    for index, points in enumerate(landmarks):
        try:
            parameters[index] = projective_parameters(alignment_matrix(points, size))
        except LandmarkError as error:
            raise IjbFormatError(f"image {names[index]!r} (line {index + 1} of the 5-point file): {error}") from None
    return parameters


def aligned_batches(paths, parameters, size, batch_size):
    """tf.data of uint8 (B, size, size, 3) batches: read, decode (RGB), align; parallel, in order."""
    def load(path, parameter):
        image = decode_rgb(tf.io.read_file(path))
        return warp_to_aligned(image, parameter, size)

    dataset = tf.data.Dataset.from_tensor_slices((paths, parameters))
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch_size).prefetch(2)


def embed_images(embedder, paths, parameters, batch_size):
    """(features of image + flip summed (N, d), features of the image alone (N, d)) float32, with a progress bar."""
    size = int(embedder.input_shape[1])
    embed = flip_pair_function(embedder)
    plain, summed = [], []
    batches = aligned_batches(paths, parameters, size, batch_size)
    progress = tqdm(total=len(paths), desc="embedding", unit="img", disable=None, file=sys.stderr)  # terminal only
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            break
        except tf.errors.InvalidArgumentError as error:
            start = sum(len(chunk) for chunk in plain)
            bad = [(path, file_problem(path)) for path in paths[start:start + batch_size]]
            named = "; ".join(f"{path}: {problem}" for path, problem in bad if problem)
            raise IjbFormatError(f"an image cannot be decoded ({named or error.message.splitlines()[0]}); "
                                 "replace it with the file from the distributed archive.") from None
        image_features, flip_features = (output.numpy() for output in embed(batch))
        plain.append(image_features)
        summed.append(image_features + flip_features)
        progress.update(len(image_features))
    progress.close()
    return np.concatenate(summed), np.concatenate(plain)


def tar_table(results, fars=IJB_FARS):
    """(header, rows) of the TAR@FAR table: one row per variant, TAR in percent, then AUC in percent."""
    header = ["variant", *[f"{far:.0e}" for far in fars], "AUC"]
    rows = [[name, *[f"{100 * result['tar_at_far'][far]:.2f}" for far in fars], f"{100 * result['roc_auc']:.2f}"]
            for name, result in results.items()]
    return header, rows


def evaluate_ijb(model_path, ijb_dir, subset="IJBC", batch_size=128, out_dir=".", variants=VARIANTS, backbone=None):
    """IJB 1:1 verification of the model at `model_path` (an `.onnx` file needs its registered `backbone`);
    writes scores, ROC and the table into `out_dir`.

    Writes `<subset>_scores.npy` ((P,) float64, variant N1D1F1, insightface's default),
    `<subset>_roc.png` (every variant) and `<subset>_tar_at_far.json` ({variant: {far: TAR}}).
    Returns {variant name: ijb_verification result}.
    """
    from recipes.commands.evaluate import load_embedding_model

    subset = str(subset).upper()
    meta = read_ijb_meta(ijb_dir, subset)
    paths = image_paths(ijb_dir, meta["names"])
    embedder = load_embedding_model(model_path, backbone)
    size = int(embedder.input_shape[1])
    parameters = alignment_parameters(meta["landmarks"], meta["names"], size)
    summed, plain = embed_images(embedder, paths, parameters, int(batch_size))
    results = {}
    for use_norm_score, use_detector_score, flip in variants:
        features = summed if flip else plain
        results[variant_name(use_norm_score, use_detector_score, flip)] = ijb_verification(
            features, meta["faceness"], meta["templates"], meta["medias"], *meta["pairs"],
            use_norm_score=use_norm_score, use_detector_score=use_detector_score)
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, subset.lower())
    first = next(iter(results.values()))
    atomic_write(f"{stem}_scores.npy", lambda temp: np.save(temp, first["scores"]), suffix=".npy")
    write_json(f"{stem}_tar_at_far.json", {name: {f"{far:.0e}": result["tar_at_far"][far] for far in IJB_FARS}
                                           for name, result in results.items()})
    plot_roc({f"{name} (AUC {100 * result['roc_auc']:.2f}%)": result["roc"] for name, result in results.items()},
             f"{stem}_roc.png", title=f"ROC on {subset} ({os.path.basename(model_path)})", xlim=(1e-6, 1.0))
    return results
