"""The tf.data training pipeline: shuffled file indices → parallel read + decode → augment → batch → prefetch.

Bad files never stop an epoch. Files that are empty or not JPEG/PNG are already left out by the
scan (`data.folders`). A file that still fails to read or decode (truncated, corrupt, deleted
since the scan) makes its map call fail; `ignore_errors` right after the map drops it. The
map is ordered, and each element carries its stream position, so a dropped sample shows up
as a gap between consecutive positions: a per-batch `scan` finds gaps and, only then, calls
Python to record the files by name in a `SkippedFiles`. Good images pay nothing extra (no
per-image Python, no per-image filter), so throughput stays that of a plain parallel decode.
Images stay uint8 through decode, augmentation and batching; whole batches become float32.

Data that cannot be read at all is caught when the dataset is built (a probe of 32 files).
Not caught: storage that disappears mid-run so that every later read fails; the stream then
keeps trying new positions and no batch comes (a per-image guard cost ~13% CPU, measured).
"""
import functools
import os
import re
import sys
import threading
import warnings

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from data.decode import decode_face, decode_rgb
from data.folders import header_problem
from registry import AUGMENTATIONS

PROBE_SIZE = 32
READ_BATCH = 256
INDEX_SHUFFLE_SEED_PAD = 498247692
ECHO_LIMIT = 20
CHANGED_MEANWHILE = "failed to decode once but decodes now (was it being written?)"


class SkippedFiles:
    """Files left out of training with the reason, in the order found; each path is kept once.

    With `log_path`, each new file is appended to that text file as `PATH<TAB>REASON` when it
    is found (lines already there are read back first, so a resumed run does not repeat them),
    and the first `echo` are printed to stderr. `dropped_samples` counts samples dropped by the
    training stream (a bad file is dropped again on every pass). Thread-safe.
    """

    def __init__(self, log_path=None, echo=ECHO_LIMIT):
        self.log_path = None if log_path is None else os.fspath(log_path)
        self.echo = echo
        self.dropped_samples = 0
        self._reasons = {}
        self._lock = threading.Lock()
        self._echoed = 0
        if self.log_path and os.path.isfile(self.log_path):
            with open(self.log_path, encoding="utf-8", errors="surrogateescape") as file:
                for line in file:
                    path, _, reason = line.rstrip("\n").partition("\t")
                    self._reasons.setdefault(path, reason)

    def add(self, path, reason):
        """Record `path` (with `reason`); True if it was not recorded before."""
        reason = " ".join(str(reason).split())
        with self._lock:
            if path in self._reasons:
                return False
            self._reasons[path] = reason
            if self.log_path:
                with open(self.log_path, "a", encoding="utf-8", errors="surrogateescape") as file:
                    file.write(f"{path}\t{reason}\n")
            if self._echoed < self.echo:
                print(f"skipping unreadable image {path}: {reason}", file=sys.stderr)
            elif self._echoed == self.echo:
                where = f"; all are listed in {self.log_path}" if self.log_path else ""
                print(f"... more unreadable images skipped{where}", file=sys.stderr)
            self._echoed += 1
            return True

    def count_dropped(self, number):
        """Add `number` to `dropped_samples`."""
        with self._lock:
            self.dropped_samples += number

    def extend(self, items):
        """Record every (path, reason) of `items`; the number that were new."""
        return sum(self.add(path, reason) for path, reason in items)

    def __len__(self):
        return len(self._reasons)

    def __iter__(self):
        with self._lock:
            return iter(list(self._reasons.items()))

    def __contains__(self, path):
        return path in self._reasons


def file_problem(path):
    """Why the image file `path` cannot be used (read, header or decode error, one line); None if it decodes."""
    try:
        with open(path, "rb") as file:
            encoded = file.read()
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    return encoded_problem(encoded)


def encoded_problem(encoded):
    """Why the encoded image `encoded` (bytes) cannot be used (header or decode error, one line); None if it decodes."""
    problem = header_problem(encoded[:16])
    if problem:
        return problem
    try:
        decode_rgb(encoded)
    except tf.errors.OpError as error:
        return f"cannot be decoded: {_op_message(error)}"
    return None


def read_image(paths, index):
    """The encoded bytes of image `index` of `paths` (file paths, or a `data.record_folder.RecordImages`)."""
    if hasattr(paths, "read"):
        return paths.read(index)
    with open(os.fspath(paths[index]), "rb") as file:
        return file.read()


def image_problem(paths, index):
    """Why image `index` of `paths` (file paths or a `data.record_folder.RecordImages`) is unusable; None if fine."""
    if hasattr(paths, "problem"):
        return paths.problem(index)
    return file_problem(os.fspath(paths[index]))


def _encoded_stream(paths, read_one, first, stop, index_of, then):
    """Stream positions first..stop-1 mapped by `then(position, index, encoded bytes)`, index = `index_of(position)`.

    Files are read by `read_one(index)` (`_read_one`) inside the parallel map. Records of a
    `RecordImages` are read by byte range, READ_BATCH positions per Python call
    (`read_encoded`; `index_of` then gets a vector), then unbatched into the parallel map.
    Both maps keep their order.
    """
    if hasattr(paths, "read_encoded"):
        def read(chunk):
            start = first + chunk * READ_BATCH
            positions = tf.range(start, tf.minimum(start + READ_BATCH, stop), dtype=tf.int64)
            indices = index_of(positions)
            return positions, indices, paths.read_encoded(indices)

        chunks = tf.data.Dataset.range((stop - first + READ_BATCH - 1) // READ_BATCH)
        encoded = chunks.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
        return encoded.map(then, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def load(position):
        index = index_of(position)
        return then(position, index, read_one(index))

    return tf.data.Dataset.range(first, stop).map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _read_one(paths):
    """A function int64 index → encoded image bytes (scalar tf.string) of `paths`."""
    if hasattr(paths, "read_encoded"):
        return lambda index: paths.read_encoded(tf.reshape(index, [1]))[0]
    path_table = tf.constant([os.fspath(path) for path in paths])
    return lambda index: tf.io.read_file(path_table[index])


def _op_message(error):
    """A TensorFlow op error's message without the function-node prefix and op suffix."""
    message = re.sub(r"\{\{[^}]*\}\}\s*", "", error.message)
    return re.sub(r"\s*\[Op:\w+\]\s*$", "", message).strip().splitlines()[0]


def _file_index(position, seed, count):
    """File index of stream position(s) `position` (int64, scalar or (R,)); pass `position // count` is a permutation.

    `tf.random.experimental.index_shuffle(position % count, (seed, position // count), count - 1)`,
    calling the raw op the way that function does (its seed padded in front with 498247692),
    because its wrapper mis-pads a per-element (R, 2) seed.
    """
    position = tf.convert_to_tensor(position, tf.int64)
    shape = tf.shape(position)
    seeds = tf.stack([tf.fill(shape, tf.constant(INDEX_SHUFFLE_SEED_PAD, tf.int64)),
                      tf.fill(shape, tf.constant(seed, tf.int64)), position // count], axis=-1)
    return tf.raw_ops.RandomIndexShuffle(index=position % count, seed=seeds, max_index=tf.constant(count - 1, tf.int64),
                                         rounds=4)


def train_dataset(paths, labels, batch_size, image_size=112, augment=("flip",), seed=0, *, start_step=0,
                  skipped=None, shard=0, num_shards=1, augment_args=None):
    """An endless dataset of (images float32 (B, S, S, 3) in 0..255, labels int32 (B,)).

    Sample number p of the stream is file `index_shuffle(p mod N, seed=(seed, p div N))`: a
    fresh permutation of all N files per pass, computed statelessly, so no shuffle buffer
    holds anything and the stream can start at any step (`start_step`, for resuming).
    Augmentations are seeded by p too, and the parallel map keeps its order, so the stream
    is always a pure function of its arguments. `augment_args` ({augmentation name: {option: value}})
    passes options to the augmentations of `augment`.

    Files that fail to read or decode are dropped and recorded in `skipped` (a
    `SkippedFiles`; a private one echoing to stderr if None); the stream then moves on, so
    batches stay full, and a resumed run is shifted by the number dropped before it.
    Before returning, up to 32 files spread over the data are decoded: if all fail, this
    raises ValueError naming them. Fewer than `batch_size` images is allowed, with a
    warning: batches then run through several passes and repeat images. Classes with a
    single image are ordinary classes.

    `num_shards` > 1 (one per worker, `tf.distribute.InputContext`): this is shard `shard`,
    which reads and decodes only its part: its sample j is stream position
    `(j div B) * B * num_shards + shard * B + j mod B` (B = `batch_size`), so the shards'
    batches number k together hold exactly positions k*B*num_shards .. (k+1)*B*num_shards - 1,
    the samples one unsharded stream of batch B*num_shards has in its batch k. `start_step`
    counts this shard's batches.
    """
    if not (isinstance(num_shards, int) and num_shards >= 1 and isinstance(shard, int) and 0 <= shard < num_shards):
        raise ValueError(f"shard={shard!r} of num_shards={num_shards!r}: need integers 0 <= shard < num_shards.")
    count = len(paths)
    if count == 0:
        raise ValueError("the dataset has no images; check --data.")
    if len(labels) != count:
        raise ValueError(f"{count} paths but {len(labels)} labels; pass one label per image.")
    if count < batch_size:
        warnings.warn(
            f"the dataset has {count} images, fewer than one batch of {batch_size}: every batch repeats images "
            "(it runs through several shuffled passes); use a smaller --batch_size or more data.", stacklevel=2)
    skipped = SkippedFiles() if skipped is None else skipped
    augmentations = build_augmentations(augment, augment_args)
    label_table = tf.constant(np.asarray(labels), dtype=tf.int32)
    read_one = _read_one(paths)

    def prepare(encoded, position):
        image = decode_face(encoded, image_size)
        for number, augmentation in enumerate(augmentations):
            image = augmentation(image, tf.stack([tf.constant(seed * 1000 + number, tf.int64), position]))
        return image

    def position_of(number):
        """Stream position of this shard's sample `number` (int64, any shape)."""
        if num_shards == 1:
            return number
        return number // batch_size * (batch_size * num_shards) + shard * batch_size + number % batch_size

    def index_of(number):
        return _file_index(position_of(number), seed, count)

    def load(number, index, encoded):
        return prepare(encoded, position_of(number)), label_table[index], number

    _probe(paths, tf.function(lambda index, position: prepare(read_one(index), position)), skipped, augment)
    record = _DropRecorder(paths, lambda number: int(index_of(tf.constant(number, tf.int64))), skipped)

    def account(previous, batch):
        images, batch_labels, numbers = batch
        dropped = numbers[-1] - previous - batch_size
        recorded = tf.cond(dropped > 0, lambda: tf.py_function(record, [previous, numbers], tf.int64),
                           lambda: tf.constant(0, tf.int64))
        with tf.control_dependencies([recorded]):
            last = tf.identity(numbers[-1])
        return last, (tf.cast(images, tf.float32), batch_labels)

    first = int(start_step) * batch_size
    dataset = _encoded_stream(paths, read_one, first, 2**62, index_of, load)
    dataset = dataset.ignore_errors().batch(batch_size, drop_remainder=True)
    dataset = dataset.scan(tf.constant(first - 1, tf.int64), account)
    return dataset.prefetch(tf.data.AUTOTUNE)


def build_augmentations(augment, augment_args=None):
    """[function (image, seed) → image] of the AUGMENTATIONS named in `augment`, with their `augment_args` options."""
    augment_args = augment_args or {}
    return [functools.partial(AUGMENTATIONS.get(name), **augment_args.get(name, {})) for name in augment]


def images_in_order(paths, image_size=112, batch_size=128):
    """A finite dataset of (images float32 (B, S, S, 3) in 0..255, image indices int64 (B,)): every image
    of `paths` once, in order, decoded as for training without augmentation; the last batch may be
    smaller. Files that fail to read or decode are left out (their indices are missing)."""
    def load(position, index, encoded):
        return tf.cast(decode_face(encoded, image_size), tf.float32), index

    dataset = _encoded_stream(paths, _read_one(paths), 0, len(paths), tf.identity, load)
    return dataset.ignore_errors().batch(batch_size).prefetch(tf.data.AUTOTUNE)


class _DropRecorder:
    """Called (through `tf.py_function`) with the last sample number before a batch and the batch's numbers (B,).

    `index_of(number)` is the image index of sample `number` of the stream.
    """

    def __init__(self, paths, index_of, skipped):
        self.paths, self.index_of, self.skipped = paths, index_of, skipped

    def __call__(self, previous, numbers):
        present = set(numbers.numpy().tolist())
        missing = [number for number in range(int(previous) + 1, int(numbers[-1])) if number not in present]
        for number in missing:
            index = self.index_of(number)
            path = os.fspath(self.paths[index])
            if path not in self.skipped:
                self.skipped.add(path, image_problem(self.paths, index) or CHANGED_MEANWHILE)
        self.skipped.count_dropped(len(missing))
        return np.int64(len(missing))


def _probe(paths, load_file, skipped, augment):
    """Run the per-image work on up to PROBE_SIZE files spread over `paths`; record failures, raise if all fail."""
    indices = np.unique(np.linspace(0, len(paths) - 1, min(len(paths), PROBE_SIZE)).astype(np.int64))
    failures = []
    for index in indices:
        try:
            load_file(tf.constant(index), tf.constant(0, tf.int64))
        except tf.errors.OpError as error:
            path = os.fspath(paths[index])
            problem = image_problem(paths, index)
            if problem is None:
                raise RuntimeError(
                    f"the training pipeline fails on {path!r}, which decodes fine: {_op_message(error)}; "
                    f"check the augmentations {list(augment)}."
                ) from error
            skipped.add(path, problem)
            failures.append((path, problem))
    if len(failures) == len(indices):
        examples = "; ".join(f"{path!r}: {problem}" for path, problem in failures[:3])
        raise ValueError(
            f"none of the {len(indices)} images sampled from the data could be decoded ({examples}); "
            "check that --data holds JPEG/PNG face images and that they are readable."
        )


def find_undecodable(paths, progress=True):
    """(path, reason) of every file of `paths` that cannot be read and decoded, in one parallel decode pass.

    Costs a full decode of the data (about an epoch of input work); `data_stats` uses it.
    """
    if not len(paths):
        return []

    def decoded_index(index, _, encoded):
        image = decode_rgb(encoded)
        return index, tf.shape(image)[0]

    dataset = _encoded_stream(paths, _read_one(paths), 0, len(paths), tf.identity, decoded_index)
    decoded = np.zeros(len(paths), bool)
    with tqdm(total=len(paths), desc="decoding", unit="image", disable=None if progress else True,
              mininterval=0.5, file=sys.stderr) as bar:
        for indices, _ in dataset.ignore_errors().batch(1024).prefetch(2):
            decoded[indices.numpy()] = True
            bar.update(len(indices))
    return [(os.fspath(paths[index]), image_problem(paths, index) or CHANGED_MEANWHILE)
            for index in np.flatnonzero(~decoded)]
