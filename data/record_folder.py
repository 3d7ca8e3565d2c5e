"""A RecordIO dataset folder (`train.rec`, `train.idx`, `property`, `*.bin`) as training data.

`scan_record_folder` gives the same `IdentityFolder` as an identity folder does, with
`paths` a `RecordImages`: a sequence of record names (`REC:key=K:offset=BYTES`, used in
messages and `skipped_files.tsv`) that the pipeline (`data.pipeline`) reads by byte range.
Class ids as stored are mapped to 0..C-1 in sorted order; `class_names` keeps the stored
ids as text (so `classes.json` maps the model's ids back to the file's).
"""
import collections.abc
import glob
import os
import sys
import threading

import numpy as np
import tensorflow as tf

from data.errors import DataError
from data.folders import IdentityFolder, check_option
from data.recordio import PROPERTY_NAME, read_index, read_payload, record_name, unpack_payload


class RecordImages(collections.abc.Sequence):
    """The image records of one `.rec` file: item i is its name; `read(i)` its encoded image bytes.

    Arrays (N,): `keys`, `offsets` (record offsets), `image_starts` (-1: a record split into
    parts, read whole and joined), `image_lengths`. Reading uses `os.pread` on one file
    descriptor per process (opened on first use), so parallel reads need no lock.
    """

    def __init__(self, rec_path, keys, offsets, image_starts, image_lengths):
        self.rec_path = rec_path
        self.keys, self.offsets = keys, offsets
        self.image_starts, self.image_lengths = image_starts, image_lengths
        self._descriptor = None
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[number] for number in range(*index.indices(len(self)))]
        return record_name(self.rec_path, self.keys[index], self.offsets[index])

    def _file(self):
        with self._lock:
            if self._descriptor is None:
                self._descriptor = open(self.rec_path, "rb")
            return self._descriptor

    def read(self, index):
        """The encoded image of record `index` (bytes; shorter than announced if the file shrank since indexing)."""
        file, start, length = self._file(), int(self.image_starts[index]), int(self.image_lengths[index])
        if start >= 0:
            return os.pread(file.fileno(), length, start)
        return unpack_payload(read_payload(file, int(self.offsets[index]), os.fstat(file.fileno()).st_size))[2]

    def read_batch(self, indices):
        """Encoded images (object array of bytes (R,)) of records `indices` (R,); b"" for any that cannot be read."""
        images = np.empty(len(indices), object)
        for number, index in enumerate(indices.tolist()):
            try:
                images[number] = self.read(index)
            except (OSError, ValueError):
                images[number] = b""
        return images

    def read_encoded(self, indices):
        """tf.string (R,) encoded images of int64 `indices` (R,), read by one Python call per batch."""
        images = tf.numpy_function(self.read_batch, [indices], tf.string, stateful=False)
        images.set_shape([None])
        return images

    def problem(self, index):
        """Why record `index` cannot be used (read or decode error, one line); None if it decodes."""
        from data.pipeline import encoded_problem

        try:
            image = self.read(index)
        except (OSError, ValueError) as error:
            return f"cannot be read: {error}"
        if len(image) < self.image_lengths[index]:
            return f"record cut short: {len(image)} of {int(self.image_lengths[index])} image bytes in the file"
        return encoded_problem(image)

    def close(self):
        if self._descriptor is not None:
            self._descriptor.close()
            self._descriptor = None

    def __del__(self):
        self.close()

    def __getstate__(self):
        return {**self.__dict__, "_descriptor": None, "_lock": None}

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.Lock())


def scan_record_folder(root, min_images=1, max_classes=None, *, cache=True):
    """The `IdentityFolder` of the RecordIO folder `root`; `paths` is a `RecordImages`.

    Classes (stored ids, sorted) with fewer than `min_images` images are left out;
    `max_classes` keeps the first that many. `cache` as for `data.recordio.read_index`.
    """
    root = os.fspath(root)
    check_option("min_images", min_images, allow_none=False)
    check_option("max_classes", max_classes, allow_none=True)
    index = read_index(root, cache)
    stored, inverse, counts = np.unique(index.labels, return_inverse=True, return_counts=True)
    kept = counts >= min_images
    if max_classes is not None:
        kept &= np.cumsum(np.ones(len(stored), np.int64)) <= max_classes
    if not kept.any():
        raise DataError(f"RecordIO folder {root!r} has no class with at least {min_images} usable image record(s) "
                         f"({len(index.keys)} usable records, {len(index.skipped)} unusable).")
    new_ids = np.cumsum(kept) - 1
    chosen = kept[inverse]
    labels = new_ids[inverse[chosen]].astype(np.int32)
    _check_property(root, len(stored))
    images = RecordImages(index.rec_path, index.keys[chosen], index.offsets[chosen], index.image_starts[chosen],
                          index.image_lengths[chosen])
    return IdentityFolder(root, images, labels, tuple(str(label) for label in stored[kept]), index.skipped)


def folder_bins(root):
    """The verification `.bin` files beside `train.rec` in `root`, sorted by name."""
    return sorted(glob.glob(os.path.join(glob.escape(os.fspath(root)), "*.bin")))


def _check_property(root, classes):
    """Warn when `root/property` (`num_classes,height,width`) disagrees with the `classes` found."""
    path = os.path.join(root, PROPERTY_NAME)
    try:
        with open(path) as file:
            stated = int(file.read().split(",")[0])
    except (OSError, ValueError):
        return
    if stated != classes:
        print(f"note: {path} states {stated} classes; the records hold {classes} distinct labels "
              "(training uses the labels found).", file=sys.stderr)
