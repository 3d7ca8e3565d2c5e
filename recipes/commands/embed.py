r"""Embeddings of every image of a folder or a verification `.bin`, as verification computes them.

Each row is embedder(image) + embedder(horizontal flip), un-normalised (`flip=False`: the image
alone), computed by `evaluation.verification` (`flip_pair_function`, `embed_batches`). Images are
decoded by `data.decode.decode_face` (grey/RGBA → RGB, other sizes resized). Files of other
extensions (.txt, .bmp, ...) and files that are not JPEG/PNG inside are left out by the folder scan
(`data.folders`), files that fail to decode are dropped from the stream; all are listed with the
reason (`data.pipeline.file_problem`). Hidden files (".name") are ignored.

Outputs: `out` (.npy, float32 (N, d)), `out` with `.tsv` (header `path<TAB>identity`, one line
per row in row order) and, if any file was skipped, `out` with `.skipped.tsv` (`path<TAB>reason`).
In both `.tsv` files a backslash, tab, newline or carriage return inside a file name is written
as `\\`, `\t`, `\n`, `\r` (the "linear TSV" escapes), so every row is one line of two fields.
"""
import os
import sys

import numpy as np
import tensorflow as tf

from storage.atomic import atomic_write
from evaluation.verification import embed_batches, flip_pair_function
from data.bins import load_bin_images
from data.folders import IMAGE_EXTENSIONS, scan_identity_folder, scan_image_folder
from data.decode import decode_face
from data.pipeline import CHANGED_MEANWHILE, SkippedFiles, file_problem
from data.tools import _flag
from recipes.commands.evaluate import load_embedding_model
from recipes.commands.export import find_model_file
from registry import MissingFileError, UserError

OTHER_IMAGE_EXTENSIONS = (".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif", ".jp2", ".ppm", ".pgm")
"""Image types `embed` does not read (the pipeline decodes JPEG and PNG only); named as such when skipped."""
TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class EmbedError(UserError, ValueError):
    """Bad `embed` arguments or data with nothing to embed."""


def list_images(data):
    """(image paths, identity per image, ((path, reason), ...) skipped at scan) of folder `data`.

    A folder with images directly in it is a flat folder (identity ""; its sub-folders are
    ignored, with a warning); otherwise each sub-folder is an identity (`data.folders`).
    """
    paths, skipped = scan_image_folder(data)
    subfolders = sorted(entry.name for entry in os.scandir(data) if entry.is_dir() and not entry.name.startswith("."))
    if paths:
        if subfolders:
            print(f"warning: {data!r} has images of its own, so it is read as a flat folder; its "
                  f"{len(subfolders)} sub-folder(s) are ignored.", file=sys.stderr)
        return paths, [""] * len(paths), skipped + other_files(data)
    try:
        folder = scan_identity_folder(data)
    except ValueError as error:
        raise EmbedError(str(error)) from None
    others = other_files(data) + tuple(item for name in subfolders for item in other_files(os.path.join(data, name)))
    return list(folder.paths), [folder.class_names[label] for label in folder.labels], folder.skipped + others


def other_files(folder):
    """((path, reason), ...) of the visible files directly in `folder` whose extension is not JPEG/PNG, by name."""
    found = []
    with os.scandir(folder) as listing:
        for entry in listing:
            extension = os.path.splitext(entry.name)[1].lower()
            if entry.name.startswith(".") or extension in IMAGE_EXTENSIONS or not entry.is_file():
                continue
            reason = (f"unsupported image type {extension} (JPEG and PNG only); convert it"
                      if extension in OTHER_IMAGE_EXTENSIONS else
                      f"not an image file (extension {extension or 'none'})")
            found.append((os.path.normpath(entry.path), reason))
    return tuple(sorted(found))


def folder_batches(paths, image_size, batch_size, kept):
    """Batches of uint8 images (B, S, S, 3) of `paths` in order; files that fail to decode are dropped.

    The index of every image that made it into a batch is appended to the list `kept`.
    """
    path_table = tf.constant([os.fspath(path) for path in paths])
    dataset = tf.data.Dataset.range(len(paths)).map(
        lambda index: (decode_face(tf.io.read_file(path_table[index]), image_size), index),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    for images, indices in dataset.ignore_errors().batch(batch_size).prefetch(2):
        kept.extend(indices.numpy().tolist())
        yield images


def _output_paths(out):
    if not out.endswith(".npy"):
        raise EmbedError(f"--out={out!r} must end with .npy (a NumPy array file).")
    stem = out[:-len(".npy")]
    return stem + ".tsv", stem + ".skipped.tsv"


def embed_data(model, data, out="embeddings.npy", flip=True, batch_size=128):
    """Embed every image of `data` (identity folders, a flat folder or a `.bin`) with `model` (run folder or
    `.keras`); write `out` and the row-order `.tsv`. Returns {"rows", "dimension", "skipped", "out", "tsv", ...}."""
    out = os.fspath(out)
    tsv_path, skipped_path = _output_paths(out)
    try:
        flip = _flag("flip", flip)
    except ValueError as error:
        raise EmbedError(str(error)) from None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EmbedError(f"--batch_size={batch_size!r} must be a positive integer.")
    data = os.fspath(data)
    if not os.path.exists(data):
        raise MissingFileError(f"--data={data!r} does not exist; pass an image folder or a verification .bin.")
    model_path, _ = find_model_file(model)
    embedder = load_embedding_model(model_path)
    image_size = int(embedder.input_shape[1])
    if flip:
        embed = flip_pair_function(embedder)
    else:
        embed = tf.function(lambda batch: (embedder(tf.cast(batch, tf.float32), training=False),),
                            reduce_retracing=True)
    skipped = SkippedFiles()
    if os.path.isfile(data):
        images, _ = load_bin_images(data, image_size=image_size)
        name = os.path.basename(data)
        rows = [(f"{name}#{index}", "") for index in range(len(images))]
        batches = tf.data.Dataset.from_tensor_slices(images).batch(batch_size).prefetch(2)
        outputs = embed_batches(embed, batches, -(-len(images) // batch_size), f"embedding {name}")
    else:
        paths, identities, scan_skipped = list_images(data)
        skipped.extend(scan_skipped)
        kept = []
        batches = folder_batches(paths, image_size, batch_size, kept)
        outputs = embed_batches(embed, batches, -(-len(paths) // batch_size), f"embedding {data}")
        for index in sorted(set(range(len(paths))) - set(kept)):
            skipped.add(os.fspath(paths[index]), file_problem(paths[index]) or CHANGED_MEANWHILE)
        rows = [(os.fspath(paths[index]), identities[index]) for index in kept]
    if not outputs:
        raise EmbedError(f"no image of {data!r} could be decoded; nothing to embed.")
    embeddings = (outputs[0] + outputs[1] if flip else outputs[0]).astype(np.float32)
    atomic_write(out, lambda temp_path: np.save(temp_path, embeddings))
    _write_tsv(tsv_path, ["path", "identity"], rows)
    if len(skipped):
        _write_tsv(skipped_path, ["path", "reason"], list(skipped))
    elif os.path.isfile(skipped_path):
        os.remove(skipped_path)
    return {"rows": len(embeddings), "dimension": int(embeddings.shape[1]), "skipped": len(skipped), "out": out,
            "tsv": tsv_path, "skipped_tsv": skipped_path if len(skipped) else None, "model": model_path, "flip": flip}


def _write_tsv(path, header, rows):
    """Tab-separated `header` then `rows`, atomically; a backslash, tab, newline or CR in a cell is escaped
    (`TSV_ESCAPES`)."""

    def write(temp_path):
        with open(temp_path, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as file:
            for row in [header, *rows]:
                file.write("\t".join(str(cell).translate(TSV_ESCAPES) for cell in row) + "\n")

    atomic_write(path, write)


def format_embed(result):
    """A few lines for the console about an `embed_data` result."""
    lines = [f"{result['rows']} embeddings of dimension {result['dimension']} "
             f"({'image + flip' if result['flip'] else 'image only'}, not L2-normalised) -> {result['out']}",
             f"image paths in row order: {result['tsv']}"]
    if result["skipped"]:
        lines.append(f"{result['skipped']} unreadable file(s) skipped, listed in {result['skipped_tsv']}")
    return "\n".join(lines)
