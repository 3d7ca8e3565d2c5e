"""Identity-folder datasets: `ROOT/<identity>/<image>.(jpg|jpeg|png)`."""
import dataclasses
import os

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class IdentityFolder:
    """Image paths (N,) with int32 class ids (N,); class id k is `class_names[k]` (sorted folder names)."""

    root: str
    paths: tuple
    labels: np.ndarray
    class_names: tuple

    @property
    def num_classes(self):
        return len(self.class_names)

    def __len__(self):
        return len(self.paths)


def scan_identity_folder(root, min_images=1, max_classes=None):
    """Scan `root`: every sub-folder is an identity; its images (by extension, sorted) its samples.

    Folder names are only names: sorted names map to ids 0..C-1 (a folder '0042' is just
    one class). Identities with fewer than `min_images` images are left out; `max_classes`
    keeps the first that many (in sorted order).
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"data folder {root!r} does not exist or is not a folder; expected ROOT/<identity>/<image>.jpg."
        )
    identities = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    paths, labels, names = [], [], []
    for identity in identities:
        folder = os.path.join(root, identity)
        images = sorted(
            entry.name for entry in os.scandir(folder)
            if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if len(images) < max(1, min_images):
            continue
        if max_classes is not None and len(names) >= max_classes:
            break
        paths.extend(os.path.join(folder, image) for image in images)
        labels.extend([len(names)] * len(images))
        names.append(identity)
    if not paths:
        raise ValueError(
            f"data folder {root!r} has no identity sub-folders with at least {min_images} "
            f"image(s) of type {', '.join(IMAGE_EXTENSIONS)}; expected ROOT/<identity>/<image>.jpg."
        )
    return IdentityFolder(root, tuple(paths), np.asarray(labels, dtype=np.int32), tuple(names))
