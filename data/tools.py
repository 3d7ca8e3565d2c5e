"""Data tools for the command line: `make_bin` (verification pairs from training data) and `data_stats`.

Both read an identity folder or a RecordIO folder (`train.rec` + `train.idx`).

    python -m recipes make_bin --data=DIR --pairs=3000 --out=my.bin
    python -m recipes data_stats --data=DIR

Both return a JSON-able dict; `format_make_bin` / `format_data_stats` turn it into the printed summary.
"""
import os
import sys

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from data.bins import write_bin
from data.folders import scan_identity_folder
from data.pairs import draw_pairs
from data.decode import decode_face, decode_rgb
from data.pipeline import CHANGED_MEANWHILE, find_undecodable, image_problem, read_image
from data.recordio import is_recordio_folder
from registry import OptionError, whole_number

LISTED_FILES = 50


def make_bin(data, pairs=3000, out="my.bin", seed=0, image_size=112):
    """Write `pairs` verification pairs drawn from `data` (identity or RecordIO folder) as a `.bin` at `out`.

    Half the pairs are two different images of one identity, half are images of two
    identities; every pair is distinct and never an image with itself, each drawn uniformly
    (seeded by `seed`) from all such pairs, so identities with more images appear more
    often, and identities with one image only appear in different-identity pairs. Pairs are
    shuffled (so each of the 10 evaluation folds is balanced) and each pair's order is random.
    Images keep their original bytes when they decode at `image_size` x `image_size`; other
    sizes are resized (as `data.bins` would on reading) and stored as PNG. Images that do not
    decode are left out and the pairs redrawn. `out + ".pairs.tsv"` lists the pairs as
    `first<TAB>second<TAB>issame` with paths (or record names) relative to `data`. Returns the summary dict.
    """
    pairs, seed = whole_number("--pairs", pairs, 1), whole_number("--seed", seed, 0)
    image_size = whole_number("--image_size", image_size, 1)
    if pairs % 2:
        raise OptionError("--pairs", pairs, "must be even: half same-identity, half different-identity pairs.")
    folder = scan_training_folder(data)
    grouped = np.argsort(folder.labels, kind="stable")
    excluded, prepared = {}, {}
    while True:
        kept = grouped[~np.isin(grouped, np.array(list(excluded), np.int64))]
        drawn = draw_pairs(np.random.default_rng(seed), folder.labels[kept], pairs, str(data))
        chosen = [(int(kept[first]), int(kept[second]), issame) for first, second, issame in drawn]
        needed = sorted({index for first, second, _ in chosen for index in (first, second)} - set(prepared))
        failed = _prepare_images(folder.paths, needed, image_size, prepared)
        if not failed:
            break
        excluded.update(failed)
    out = os.fspath(out)
    write_bin(out, [prepared[index][0] for first, second, _ in chosen for index in (first, second)],
              [issame for _, _, issame in chosen])
    pairs_file = out + ".pairs.tsv"
    names = folder.paths
    with open(pairs_file, "w", encoding="utf-8", errors="surrogateescape") as file:
        for first, second, issame in chosen:
            file.write(f"{os.path.relpath(names[first], folder.root)}\t{os.path.relpath(names[second], folder.root)}"
                       f"\t{int(issame)}\n")
    images = {index for first, second, _ in chosen for index in (first, second)}
    used = {int(folder.labels[index]) for index in images}
    return {
        "out": out, "pairs": len(chosen), "same": sum(issame for _, _, issame in chosen),
        "different": sum(not issame for _, _, issame in chosen), "images": len(images),
        "identities": len(used), "resized": sum(prepared[index][1] for index in images), "image_size": image_size,
        "pairs_file": pairs_file,
        "left_out": [[path, reason] for path, reason in folder.skipped]
                    + [[names[index], reason] for index, reason in excluded.items()],
    }


def format_make_bin(summary):
    """The printed summary of a `make_bin` result."""
    lines = [
        f"wrote {summary['out']}: {summary['pairs']} pairs ({summary['same']} same identity, "
        f"{summary['different']} different) of {summary['images']} images from {summary['identities']} identities"
        + (f"; {summary['resized']} resized to {summary['image_size']}x{summary['image_size']} (PNG)"
           if summary["resized"] else ""),
        f"pairs listed in {summary['pairs_file']}",
    ]
    return "\n".join(lines + _file_lines("files left out", summary["left_out"]))


def data_stats(data, decode=True):
    """Counts of `data` (identity or RecordIO folder): identities, images, images per identity, unreadable files.

    Unreadable files are those the scan finds empty or not JPEG/PNG, plus (with `decode`,
    one full parallel decode of the data) those that do not decode. Returns a JSON-able dict.
    """
    decode = _flag("decode", decode)
    folder = scan_training_folder(data)
    counts = np.bincount(folder.labels, minlength=folder.num_classes)
    unreadable = list(folder.skipped) + (find_undecodable(folder.paths) if decode else [])
    return {
        "data": os.fspath(data), "identities": folder.num_classes, "images": len(folder),
        "images_per_identity": {"min": int(counts.min()), "median": float(np.median(counts)),
                                "max": int(counts.max()), "mean": round(float(counts.mean()), 2)},
        "single_image_identities": int((counts == 1).sum()),
        "decode_checked": bool(decode), "unreadable": len(unreadable),
        "unreadable_files": [[path, reason] for path, reason in unreadable],
    }


def format_data_stats(stats):
    """The printed summary of a `data_stats` result."""
    per = stats["images_per_identity"]
    checked = "headers and a full decode" if stats["decode_checked"] else "headers only; --decode=True also decodes"
    lines = [
        f"data: {stats['data']}",
        f"identities: {stats['identities']} ({stats['single_image_identities']} with a single image)",
        f"images: {stats['images']}",
        f"images per identity: min {per['min']}, median {per['median']:g}, max {per['max']}, mean {per['mean']:g}",
        f"unreadable files: {stats['unreadable']} (checked: {checked})",
    ]
    return "\n".join(lines + _file_lines("unreadable", stats["unreadable_files"])[1:])


def _file_lines(title, files):
    if not files:
        return []
    lines = [f"{title}: {len(files)}"] + [f"  {path}: {reason}" for path, reason in files[:LISTED_FILES]]
    if len(files) > LISTED_FILES:
        lines.append(f"  ... and {len(files) - LISTED_FILES} more")
    return lines


def _flag(name, value):
    """A boolean option given as a bool or as true/false, yes/no, 1/0 text."""
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise OptionError(f"--{name}", value, "must be true or false.")


def _prepare_images(paths, indices, image_size, prepared):
    """Fill `prepared[index] = (bytes for the .bin, resized?)` for images `indices` of `paths`.

    Returns {index: reason} of the images that fail to read or decode.
    """
    failed = {}
    for index in tqdm(indices, desc="checking images", unit="image", disable=None, mininterval=0.5, file=sys.stderr):
        try:
            content = read_image(paths, index)
            shape = decode_rgb(content).shape
        except (OSError, ValueError, tf.errors.OpError):
            failed[index] = image_problem(paths, index) or CHANGED_MEANWHILE
            continue
        resized = shape[0] != image_size or shape[1] != image_size
        if resized:
            content = tf.io.encode_png(decode_face(content, image_size)).numpy()
        prepared[index] = (content, resized)
    return failed


def scan_training_folder(data):
    """The `IdentityFolder` of `data`: a RecordIO folder (train.rec + train.idx) or an identity folder."""
    if is_recordio_folder(data):
        from data.record_folder import scan_record_folder

        return scan_record_folder(data)
    return scan_identity_folder(data)
