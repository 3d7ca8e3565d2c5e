"""Identity-folder datasets: `ROOT/<identity>/<image>.(jpg|jpeg|png)`, indexed once and cached.

Scanning lists every identity sub-folder and checks each image file's first bytes: an empty
file or one that is not JPEG/PNG by its magic bytes (a text or HTML page named .jpg) is left
out and reported in `IdentityFolder.skipped`. That costs one open and a 16-byte read per file,
paid once because the result is cached (`data.index_cache`); files that pass the header but
do not decode (e.g. truncated) are skipped by the training pipeline (`data.pipeline`).
Hidden names (starting with ".") are ignored, as are files of other extensions. An entry that
cannot be read (no permission, a symbolic-link loop, a dangling link) costs that entry only:
it is reported with its reason and the rest of its identity folder is kept.
"""
import concurrent.futures
import dataclasses
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from data import index_cache
from data.errors import DataError
from registry import MissingFileError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SETTLE_SECONDS = 2.0
SCAN_THREADS = 8
UNLISTABLE = "."  # the name recorded for an identity folder that cannot be listed


@dataclasses.dataclass(frozen=True)
class IdentityFolder:
    """Image paths (N,) with int32 class ids (N,); class id k is `class_names[k]` (sorted folder names).

    `skipped` holds (path, reason) for every bad image file found while scanning the identity
    folders up to the last kept class (also in folders left out by `min_images`).
    """

    root: str
    paths: tuple
    labels: np.ndarray
    class_names: tuple
    skipped: tuple = ()

    @property
    def num_classes(self):
        return len(self.class_names)

    def __len__(self):
        return len(self.paths)


def header_problem(head):
    """Why the first bytes `head` (>= 8 bytes, fewer only at end of file) are not a JPEG/PNG; None if they are."""
    if not head:
        return "empty file (0 bytes)"
    if head.startswith(JPEG_MAGIC) or head.startswith(PNG_MAGIC):
        return None
    return f"not a JPEG or PNG file (starts with {head[:8]!r})"


def scan_identity_folder(root, min_images=1, max_classes=None, *, cache=True, progress=True):
    """Scan `root`: every sub-folder is an identity; its JPEG/PNG images (sorted by name) its samples.

    Folder names are only names: sorted names map to ids 0..C-1 (a folder '0042' is just one
    class). Identities with fewer than `min_images` good images are left out; `max_classes`
    keeps the first that many (in sorted order). `cache`: True = use and update the index
    cache (see `data.index_cache`), False = scan everything and write nothing, or a folder to
    keep the index in. `progress` shows a bar (on a terminal) while folders are scanned.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise MissingFileError(
            f"data folder {root!r} does not exist or is not a folder; expected ROOT/<identity>/<image>.jpg."
        )
    check_option("min_images", min_images, allow_none=False)
    check_option("max_classes", max_classes, allow_none=True)
    entries = index_identity_folder(root, cache=cache, progress=progress)
    return _select(root, entries, min_images, max_classes)


def index_identity_folder(root, *, cache=True, progress=True):
    """{identity folder name: IdentityEntry} of every identity under `root`, rescanning only changed folders.

    Folders are stamped (mtime) before they are listed, so a change during the scan is seen
    next time. A folder changed within SETTLE_SECONDS of the scan is indexed but its mtime is
    not stored (a file added in the same clock tick would be missed), so it is rescanned
    next time. A cached folder is also rescanned when it could not be listed, or when one
    of its skipped files now gives another verdict (each is re-checked on every load: they
    are few). SCAN_THREADS threads list and check folders (the work waits on storage).
    """
    root = os.fspath(root)
    cache_dir = cache if isinstance(cache, (str, os.PathLike)) else None
    started = time.time_ns()
    stamps = _folder_stamps(root)
    cached, _ = index_cache.load_index(root, cache_dir) if cache else ({}, None)
    entries = {name: cached[name] for name in stamps
               if name in cached and _still_valid(os.path.join(root, name), cached[name], stamps[name])}
    stale = [name for name in stamps if name not in entries]
    settled_before = started - int(SETTLE_SECONDS * 1e9)
    if stale:
        clock = time.perf_counter()
        bar = tqdm(total=len(stale), desc=f"indexing {root}", unit="folder", disable=None if progress else True,
                   mininterval=0.5, file=sys.stderr)
        with bar, concurrent.futures.ThreadPoolExecutor(min(SCAN_THREADS, len(stale))) as pool:
            scanned = pool.map(lambda name: _scan_identity(os.path.join(root, name)), stale)
            for name, (files, skipped) in zip(stale, scanned):
                settled = stamps[name] is not None and stamps[name] < settled_before
                entries[name] = index_cache.IdentityEntry(stamps[name] if settled else None, files, skipped)
                bar.update()
        where = index_cache.save_index(root, entries, cache_dir) if cache else None
        print(f"indexed {root}: {len(stale)} of {len(stamps)} identity folders scanned in "
              f"{time.perf_counter() - clock:.1f} s; index {'at ' + where if where else 'not saved'}", file=sys.stderr)
    elif cache and len(cached) != len(entries):
        index_cache.save_index(root, entries, cache_dir)
    return entries


def _still_valid(folder, entry, mtime_ns):
    """True if the cached `entry` of `folder` holds: same mtime, listable, every skipped file still bad as recorded."""
    if entry.mtime_ns is None or entry.mtime_ns != mtime_ns:
        return False
    return all(name != UNLISTABLE and _file_problem(os.path.join(folder, name)) == reason
               for name, reason in entry.skipped)


def check_option(name, value, allow_none):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{name}={value!r} must be a positive integer{' or None' if allow_none else ''}.")


def _folder_stamps(root):
    """{name: mtime_ns} of the identity sub-folders of `root` (hidden ones excluded), in sorted order.

    An entry that cannot be inspected (a symbolic-link loop) gets None: it is scanned, found
    unlistable and reported, like a folder that cannot be listed.
    """
    stamps = {}
    with os.scandir(root) as listing:
        for entry in listing:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    stamps[entry.name] = entry.stat().st_mtime_ns
            except OSError:
                stamps[entry.name] = None
    return dict(sorted(stamps.items()))


def _is_image_entry(entry):
    """True for a visible image-named file, or a link that does not resolve to one (a loop, a dangling link).

    Links that do not resolve are kept so that reading them fails and they are reported.
    """
    if entry.name.startswith(".") or not entry.name.lower().endswith(IMAGE_EXTENSIONS):
        return False
    try:
        return entry.is_file() or entry.is_symlink()
    except OSError:
        return True


def _file_problem(path):
    """Why the image file `path` is unusable, judged by its first 16 bytes; None if it looks like a JPEG/PNG."""
    try:
        with open(path, "rb") as file:
            return header_problem(file.read(16))
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"


def scan_image_folder(folder):
    """(good image paths (sorted by name), ((path, reason), ...) of bad ones) of the images directly in `folder`.

    The same checks as an identity folder's scan: JPEG/PNG extension and magic bytes; hidden names ignored.
    """
    good, bad = _scan_identity(folder)
    return ([os.path.join(folder, name) for name in good],
            tuple((os.path.normpath(os.path.join(folder, name)), reason) for name, reason in bad))


def _scan_identity(folder):
    """(sorted good image names, ((name, reason), ...) of bad ones) of one identity folder.

    A bad entry costs that entry only; a folder that cannot be listed gives the one bad
    entry (UNLISTABLE, reason).
    """
    try:
        with os.scandir(folder) as listing:
            names = sorted(entry.name for entry in listing if _is_image_entry(entry))
    except OSError as error:
        return (), ((UNLISTABLE, f"folder cannot be listed: {error.strerror or error}"),)
    good, bad = [], []
    for name in names:
        problem = _file_problem(os.path.join(folder, name))
        if problem:
            bad.append((name, problem))
        else:
            good.append(name)
    return tuple(good), tuple(bad)


def _select(root, entries, min_images, max_classes):
    """The `IdentityFolder` of the identities in `entries` (sorted) with at least `min_images` images."""
    paths, counts, names, skipped = [], [], [], []
    for name in sorted(entries):
        if max_classes is not None and len(names) >= max_classes:
            break
        entry = entries[name]
        prefix = os.path.join(root, name) + os.sep
        skipped.extend((prefix + file, reason) for file, reason in entry.skipped)
        if len(entry.files) < min_images:
            continue
        paths.extend([prefix + file for file in entry.files])
        counts.append(len(entry.files))
        names.append(name)
    if not paths:
        bad = f"; {len(skipped)} bad file(s) were skipped, e.g. {skipped[0][0]!r}: {skipped[0][1]}" if skipped else ""
        raise DataError(
            f"data folder {root!r} has no identity sub-folders with at least {min_images} good "
            f"image(s) of type {', '.join(IMAGE_EXTENSIONS)}{bad}; expected ROOT/<identity>/<image>.jpg."
        )
    labels = np.repeat(np.arange(len(names), dtype=np.int32), counts)
    return IdentityFolder(root, tuple(paths), labels, tuple(names), tuple(skipped))
