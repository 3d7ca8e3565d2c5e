"""Image files for tests: smooth random pictures, encoded, and a folder with every kind of bad file.

Importable from any test (pytest puts this folder, the one of `conftest.py`, on `sys.path`).
"""
import io
import os
import time

import numpy as np
from PIL import Image


def _pixels(seed, size, channels=3):
    """A smooth random image (JPEG-friendly), uint8 (size, size, channels)."""
    coarse = np.random.default_rng(seed).uniform(0, 255, (4, 4, channels))
    return np.asarray(Image.fromarray(coarse.astype(np.uint8).squeeze()).resize((size, size), Image.BILINEAR))


def _encode(pixels, kind, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format=kind)
    return buffer.getvalue()


def _write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(content)


def jpeg_bytes(seed=0, size=16):
    """A smooth random `size` x `size` RGB picture, JPEG-encoded."""
    return _encode(_pixels(seed, size), "JPEG")


def backdate(root, seconds=3600):
    """Set every identity folder's mtime `seconds` back: an old dataset, not one still being written."""
    past = time.time() - seconds
    for name in os.listdir(root):
        if os.path.isdir(os.path.join(root, name)):
            os.utime(os.path.join(root, name), (past, past))


def write_acceptance_folder(root):
    """Identities `Tom_Hanks`, `0`, `0042`: 4 good 112x112 JPEGs each plus one odd file of every kind.

    Good odd ones: an RGBA PNG, a grayscale JPEG, a 250x250 JPEG. Bad ones (returned by
    name): a zero-byte file, a truncated JPEG and a text file named .jpg.
    """
    for number, identity in enumerate(("Tom_Hanks", "0", "0042")):
        for index in range(4):
            _write(os.path.join(root, identity, f"{index}.jpg"), _encode(_pixels(10 * number + index, 112), "JPEG"))
    _write(os.path.join(root, "Tom_Hanks", "alpha.png"), _encode(_pixels(100, 112, 4), "PNG"))
    _write(os.path.join(root, "0", "grey.jpg"), _encode(_pixels(101, 112, 1), "JPEG"))
    _write(os.path.join(root, "0042", "big.jpg"), _encode(_pixels(102, 250), "JPEG"))
    _write(os.path.join(root, "0", "zero.jpg"), b"")
    full = _encode(np.random.default_rng(5).integers(0, 256, (112, 112, 3), dtype=np.uint8), "JPEG")
    _write(os.path.join(root, "0042", "truncated.jpg"), full[: len(full) // 2])
    _write(os.path.join(root, "Tom_Hanks", "readme.jpg"), b"these are photos of Tom Hanks\n")
    return {os.path.join(root, "0", "zero.jpg"), os.path.join(root, "0042", "truncated.jpg"),
            os.path.join(root, "Tom_Hanks", "readme.jpg")}
