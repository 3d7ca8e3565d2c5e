"""Index cache of an identity folder: first scan vs loading the cached index, on many tiny files.

    python benchmarks/index_cache.py [--identities=1000] [--per_identity=100]

Writes identities x per_identity copies of one tiny valid JPEG into a temporary folder
(folder mtimes set an hour back, as for a dataset copied earlier), then prints the time of
the first scan (listing + header check of every file, index written), of a scan that loads
the cached index, and of a scan after one file was added (one folder rescanned). One file in
`--bad_every` is empty, so the cached load includes re-checking those skipped files. Also
prints what a stat of every file would cost (the price of noticing good files rewritten in
place, which the index does not pay). Prints numbers only; nothing is asserted. The goal is
cached load < first scan / 10.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from data import index_cache  # noqa: E402
from data.folders import scan_identity_folder  # noqa: E402


def tiny_jpeg():
    """The bytes of an 8x8 grey JPEG (a few hundred bytes), encoded with PIL if present, else TensorFlow."""
    try:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buffer, format="JPEG")
        return buffer.getvalue()
    except ImportError:
        import tensorflow as tf

        return tf.io.encode_jpeg(np.full((8, 8, 3), 128, np.uint8)).numpy()


def write_folder(root, identities, per_identity, bad_every):
    """identities x per_identity JPEGs; every `bad_every`-th file is empty (a skipped file)."""
    content = tiny_jpeg()
    past = time.time() - 3600
    for identity in range(identities):
        folder = os.path.join(root, f"{identity:07d}")
        os.makedirs(folder)
        for number in range(per_identity):
            bad = (identity * per_identity + number) % bad_every == bad_every - 1
            with open(os.path.join(folder, f"{number:04d}.jpg"), "wb") as file:
                file.write(b"" if bad else content)
        os.utime(folder, (past, past))


def stat_every_file(paths):
    """Seconds to os.stat every path once."""
    started = time.perf_counter()
    for path in paths:
        os.stat(path)
    return time.perf_counter() - started


def timed_scan(root):
    started = time.perf_counter()
    folder = scan_identity_folder(root, progress=False)
    return time.perf_counter() - started, folder


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=1000)
    parser.add_argument("--per_identity", type=int, default=100)
    parser.add_argument("--bad_every", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        write_folder(root, args.identities, args.per_identity, args.bad_every)
        total = args.identities * args.per_identity
        print(f"{total} files in {args.identities} identity folders written in {time.perf_counter() - started:.1f} s")
        first, scanned = timed_scan(root)
        cached_times = []
        for _ in range(3):
            seconds, cached = timed_scan(root)
            cached_times.append(seconds)
        assert cached.paths == scanned.paths
        stat_seconds = stat_every_file(cached.paths)
        with open(os.path.join(root, f"{0:07d}", "extra.jpg"), "wb") as file:
            file.write(tiny_jpeg())
        changed, rescanned = timed_scan(root)
        index_size = os.path.getsize(index_cache.index_locations(root)[0])
    cached_best = min(cached_times)
    print(f"first scan (list + header check, write index): {first:8.3f} s")
    print(f"cached index load (best of 3):                  {cached_best:8.3f} s  "
          f"(re-checks the {len(scanned.skipped)} skipped files)")
    print(f"stat of every file (not done):                   {stat_seconds:8.3f} s")
    print(f"after adding one file (one folder rescanned):    {changed:8.3f} s  ({len(rescanned)} images)")
    print(f"index file: {index_size / 1024:.0f} KiB for {total} files")
    print(f"cached / first scan: {cached_best / first:.3f}  (goal < 0.1)")


if __name__ == "__main__":
    main()
