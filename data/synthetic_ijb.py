"""A small IJB-B/C-style folder in insightface's layout, from held-out synthetic identities (tests, demos).

Every image is an aligned 112×112 synthetic face (`data.synthetic.render_identity`, the held-out seeds of
the synthetic `verify.bin`) enlarged 2× (each pixel repeated 2×2) and pasted at a random offset into a
larger loose crop; its five landmarks are the ArcFace template points ×2 (+0.5, the centre of the
repeated pixel, + the offset), so alignment gives back the original face exactly. Identities have
`templates` templates of `medias` medias of `images` images; the pair list holds every pair of templates.

    python -m data.synthetic_ijb OUT_DIR [--identities=60]     # then: python -m recipes eval_ijb --ijb=OUT_DIR ...
"""
import os
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from data.align import ARCFACE_TEMPLATE
from data.synthetic import EVAL_SPLIT, IMAGE_SIZE, render_identity

CANVAS = (2 * IMAGE_SIZE + 36, 2 * IMAGE_SIZE + 26)
"""(height, width) of a loose crop: the 2× face plus room for the random offset."""


class SyntheticIjb(NamedTuple):
    """What `make_synthetic_ijb` wrote, in meta-file order: faces (N, 112, 112, 3) uint8 (the aligned truth),
    faceness (N,), templates (N,), medias (N,), pairs (3, P) rows template1, template2, label."""

    faces: np.ndarray
    faceness: np.ndarray
    templates: np.ndarray
    medias: np.ndarray
    pairs: np.ndarray


def make_synthetic_ijb(root, identities=3, templates=2, medias=2, images=2, seed=0, subset="IJBC"):
    """Write `root/meta/<subset>_{face_tid_mid,name_5pts_score,template_pair_label}.txt` and `root/loose_crop/*.png`."""
    prefix = subset.lower()
    os.makedirs(os.path.join(root, "meta"), exist_ok=True)
    os.makedirs(os.path.join(root, "loose_crop"), exist_ok=True)
    rng = np.random.default_rng((seed, EVAL_SPLIT, 2**32 + 1))
    per_identity = templates * medias * images
    faces, template_ids, media_ids, faceness, face_lines, point_lines = [], [], [], [], [], []
    for identity in range(identities):
        for index, face in enumerate(render_identity((seed, EVAL_SPLIT, identity), per_identity)):
            offset = rng.integers(0, [CANVAS[1] - 2 * IMAGE_SIZE, CANVAS[0] - 2 * IMAGE_SIZE], endpoint=True)
            canvas = np.full(CANVAS + (3,), 90, np.uint8)
            canvas[offset[1]:offset[1] + 2 * IMAGE_SIZE, offset[0]:offset[0] + 2 * IMAGE_SIZE] = (
                face.repeat(2, axis=0).repeat(2, axis=1))
            landmarks = ARCFACE_TEMPLATE.astype(np.float64) * 2 + 0.5 + offset
            name = f"{len(faces)}.png"
            tf.io.write_file(os.path.join(root, "loose_crop", name), tf.io.encode_png(canvas))
            faces.append(face)
            template_ids.append(1 + identity * templates + index // (medias * images))
            media_ids.append(1 + (identity * per_identity + index) // images)
            faceness.append(round(float(rng.uniform(0.5, 1.0)), 6))
            face_lines.append(f"{name} {template_ids[-1]} {media_ids[-1]}\n")
            point_lines.append(f"{name} {' '.join(f'{value:.4f}' for value in landmarks.ravel())} {faceness[-1]}\n")
    unique = sorted(set(template_ids))
    pairs = np.array([(first, second, int((first - 1) // templates == (second - 1) // templates))
                      for index, first in enumerate(unique) for second in unique[index + 1:]], np.int64).T
    pair_lines = [f"{first} {second} {label}\n" for first, second, label in pairs.T]
    for suffix, lines in (("face_tid_mid", face_lines), ("name_5pts_score", point_lines),
                          ("template_pair_label", pair_lines)):
        with open(os.path.join(root, "meta", f"{prefix}_{suffix}.txt"), "w") as file:
            file.writelines(lines)
    return SyntheticIjb(np.stack(faces), np.array(faceness), np.array(template_ids), np.array(media_ids), pairs)


def main(out, identities=60, templates=2, medias=2, images=3, seed=0, subset="IJBC"):
    """Write a synthetic IJB folder to OUT (the command line of this module)."""
    written = make_synthetic_ijb(str(out), int(identities), int(templates), int(medias), int(images), int(seed),
                                 str(subset))
    print(f"{len(written.faces)} images in {len(set(written.templates))} templates, {written.pairs.shape[1]} "
          f"template pairs: {out}")


if __name__ == "__main__":
    import fire

    fire.Fire(main)
