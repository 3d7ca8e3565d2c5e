"""Insightface verification `.bin` files: a pickle of `(bins, issame_list)`.

`bins` holds 2N encoded images (JPEG/PNG bytes, or uint8 numpy arrays of those bytes);
pair k is `(bins[2k], bins[2k + 1])` with label `issame_list[k]`. Files are read with a
restricted unpickler: only numpy array reconstruction is admitted, never arbitrary code.
"""
import codecs
import os
import pickle

import numpy as np
import tensorflow as tf

from data.decode import decode_face
from data.errors import DataError
from data.pipeline import encoded_problem
from registry import MissingFileError
from storage.atomic import atomic_write

try:
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric


class BinFormatError(DataError):
    """A file is not a valid verification `.bin` (a folder, empty, wrong structure, counts or refused content)."""


def _latin1_encode(text, encoding):
    """`_codecs.encode` as protocol-2 pickles use it for bytes; only latin-1 is admitted."""
    if encoding.replace("_", "-").lower() not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} (only latin-1 is admitted)")
    return codecs.encode(text, "latin1")


_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _module in ("numpy.core", "numpy._core"):
    _ALLOWED_GLOBALS[(f"{_module}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED_GLOBALS[(f"{_module}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED_GLOBALS[(f"{_module}.numeric", "_frombuffer")] = _numeric._frombuffer


class _BinUnpickler(pickle.Unpickler):
    """Admits only the globals that numpy arrays of bytes and bools need; refuses everything else."""

    def __init__(self, file, path):
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module, name):
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise BinFormatError(
                f"{self._path!r} refers to the global '{module}.{name}', which a verification .bin never "
                "needs; refusing it because loading this pickle may run code. This is not an insightface "
                "verification .bin (a pickle of (encoded images, issame labels)); check the path."
            )
        return allowed


def _as_bytes(item, index, path):
    """One encoded image: bytes, bytearray or a uint8 numpy array of the encoded bytes → bytes."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    raise BinFormatError(
        f"{path!r}: image {index} is a {type(item).__name__}"
        f"{' of ' + str(item.dtype) if isinstance(item, np.ndarray) else ''}; "
        "expected encoded JPEG/PNG bytes or a uint8 numpy array of them."
    )


def _as_issame(labels, path):
    """Pair labels (list of bools/0-1 ints or an array) → bool array (P,)."""
    array = np.asarray(labels)
    if array.size == 0:
        return np.zeros((0,), bool)
    if array.ndim != 1 or not (array.dtype == np.bool_ or (array.dtype.kind in "iu" and np.isin(array, (0, 1)).all())):
        raise BinFormatError(
            f"{path!r}: issame labels must be a flat list of booleans, got dtype {array.dtype} shape {array.shape}."
        )
    return array.astype(bool)


def read_bin(path):
    """Read a verification `.bin` → (encoded images: list of 2P bytes, issame: bool array (P,)).

    Raises MissingFileError for a missing file and BinFormatError for anything that is not
    the `(bins, issame_list)` format with at least one pair (a folder, an empty file, pickles
    that would import other globals ...).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise BinFormatError(f"{path!r} is a folder, not a verification .bin; pass the .bin files in it, e.g. "
                             f"{os.path.join(path, '*.bin')!r}.")
    if not os.path.isfile(path):
        raise MissingFileError(f"verification .bin {path!r} does not exist; check the path (e.g. --eval_bins).")
    if os.path.getsize(path) == 0:
        raise BinFormatError(f"{path!r} is empty (0 bytes); a verification .bin is a pickle of (encoded images, "
                             "issame labels). Copy or download it again.")
    with open(path, "rb") as file:
        try:
            content = _BinUnpickler(file, path).load()
        except BinFormatError:
            raise
        except Exception as error:
            raise BinFormatError(
                f"{path!r} could not be unpickled ({type(error).__name__}: {error}); "
                "it is not a verification .bin or it is truncated."
            ) from error
    if not isinstance(content, (tuple, list)) or len(content) != 2:
        kind = f"a {type(content).__name__}"
        if isinstance(content, (tuple, list)):
            kind += f" of length {len(content)}"
        raise BinFormatError(f"{path!r} holds {kind}; a verification .bin holds a pair (bins, issame_list).")
    bins, labels = content
    if not isinstance(bins, (tuple, list)):
        raise BinFormatError(f"{path!r}: bins is a {type(bins).__name__}; expected a list of encoded images.")
    issame = _as_issame(labels, path)
    if len(issame) == 0:
        raise BinFormatError(
            f"{path!r} holds 0 pairs ({len(bins)} images); a verification .bin needs at least one pair. "
            "Check the path, or write one with `python -m recipes make_bin --data=DIR --out=FILE.bin`."
        )
    if len(bins) != 2 * len(issame):
        raise BinFormatError(
            f"{path!r} has {len(bins)} images but {len(issame)} pair labels; "
            f"a verification .bin needs exactly 2 images per pair ({2 * len(issame)})."
        )
    return [_as_bytes(item, index, path) for index, item in enumerate(bins)], issame


def check_bin(path):
    """Refuse now what `load_bin_images` would refuse later; returns the number of pairs.

    Reads the file as `read_bin` does (missing: FileNotFoundError; a folder, an empty file, not
    the `(bins, issame_list)` pickle, 0 pairs: BinFormatError) and decodes the two images of the
    first pair (BinFormatError naming the image). Costs one read of the file; nothing is kept.
    """
    encoded, issame = read_bin(path)
    for index in (0, 1):
        problem = encoded_problem(encoded[index])
        if problem:
            raise BinFormatError(f"{os.fspath(path)!r}: image {index} of the first pair: {problem}; the file is "
                                 "corrupt or not a verification .bin.")
    return len(issame)


def decoded_batches(encoded, image_size=112, batch_size=256):
    """tf.data of uint8 (B, S, S, 3) RGB batches of the encoded images `encoded` (list of bytes), in their order.

    Decoding runs in a parallel map that must keep the order (`deterministic=True`): pair k is
    images 2k, 2k + 1. (TensorFlow's default map-and-batch fusion hides a non-deterministic map;
    without it, quick images overtake slow ones.) Images not S x S are resized bilinearly.
    """
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(encoded, dtype=tf.string))
    dataset = dataset.map(lambda item: decode_face(item, image_size), num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    return dataset.batch(batch_size).prefetch(2)


def load_bin_images(path, image_size=112, batch_size=256):
    """Read and decode a verification `.bin` → (uint8 images (2P, S, S, 3) RGB, issame bool (P,)).

    Decoded by `decoded_batches`, in the file's order.
    """
    encoded, issame = read_bin(path)
    images = np.empty((len(encoded), image_size, image_size, 3), np.uint8)
    start = 0
    try:
        for batch in decoded_batches(encoded, image_size, batch_size):
            images[start:start + len(batch)] = batch.numpy()
            start += len(batch)
    except tf.errors.InvalidArgumentError as error:
        raise BinFormatError(
            f"{os.fspath(path)!r}: an image could not be decoded as JPEG/PNG ({error.message.splitlines()[0]}); "
            "the file is corrupt or not a verification .bin."
        ) from error
    return images, issame


def write_bin(path, encoded_images, issame):
    """Write 2P encoded images and P pair labels as a verification `.bin`, atomically.

    The pickle holds `(list of bytes, list of bool)`; it is written with
    `storage.atomic.atomic_write`, so readers never see half a file.
    """
    path = os.fspath(path)
    issame = [bool(label) for label in _as_issame(list(issame), path)]
    encoded = [_as_bytes(item, index, path) for index, item in enumerate(encoded_images)]
    if not issame or len(encoded) != 2 * len(issame):
        raise ValueError(
            f"cannot write {path!r}: {len(encoded)} images for {len(issame)} pair labels; "
            f"pass at least one pair and exactly 2 images per pair ({2 * len(issame)})."
        )

    def write(temp_path):
        with open(temp_path, "xb") as file:
            pickle.dump((encoded, issame), file, protocol=4)


    atomic_write(path, write)
