"""The built-in synthetic face dataset: procedurally drawn identities under per-image nuisance.

An identity is a seeded parameter vector (face shape, skin, hair, eyes, brows, nose, mouth,
marks, beard, glasses); each image draws it through a random similarity transform with
pose, expression, lighting, colour cast, blur, noise, occlusion and JPEG quality varied.
Rendering is vectorised numpy on a 112 x 112 grid (images of one identity at once).
"""
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid

import numpy as np
import tensorflow as tf

from data.bins import write_bin
from data.errors import DataError
from data.pairs import draw_pairs

FORMAT_VERSION = 2  # 2: held-out pairs drawn by data.pairs.draw_pairs
IMAGE_SIZE = 112
COMPLETE_MARKER = "COMPLETE.json"
TRAIN_SPLIT, EVAL_SPLIT = 0, 1

SKIN_TONES = np.array([[241, 208, 184], [222, 176, 140], [190, 136, 98], [141, 94, 64], [96, 62, 42]], np.float32)
HAIR_COLOURS = np.array([
    [22, 19, 18], [55, 36, 26], [96, 64, 40], [150, 105, 60], [205, 170, 110], [135, 58, 28], [165, 162, 158],
], np.float32)
HAIR_WEIGHTS = np.array([0.28, 0.24, 0.16, 0.1, 0.1, 0.06, 0.06])
IRIS_COLOURS = np.array([[85, 52, 30], [45, 30, 22], [70, 110, 165], [80, 120, 80], [115, 125, 135], [130, 98, 50]],
                        np.float32)


@dataclasses.dataclass(frozen=True)
class SyntheticDataset:
    """A generated dataset: `train_dir/<identity>/<n>.jpg` and a `.bin` of pairs of held-out identities."""

    train_dir: str
    bin_path: str
    num_classes: int
    num_images: int


def default_synthetic_root():
    """Where synthetic datasets are cached: `$FACES_SYNTHETIC_DIR`, else `~/.cache/faces-synthetic`."""
    return os.environ.get("FACES_SYNTHETIC_DIR") or os.path.expanduser(os.path.join("~", ".cache", "faces-synthetic"))


def _sample_identity(rng):
    """One identity's parameters (face units: the image spans [-1, 1], v grows downward)."""
    uniform = rng.uniform
    skin = uniform(0, 4)
    low = int(min(skin, 3))
    skin_colour = SKIN_TONES[low] + (skin - low) * (SKIN_TONES[low + 1] - SKIN_TONES[low]) + rng.normal(0, 6, 3)
    hair_colour = HAIR_COLOURS[rng.choice(len(HAIR_COLOURS), p=HAIR_WEIGHTS)] * uniform(0.8, 1.2) + rng.normal(0, 5, 3)
    bald = uniform() < 0.08
    eye_y = uniform(-0.16, -0.04)
    nose_y = eye_y + uniform(0.28, 0.42)
    return dict(
        face_a=uniform(0.62, 0.78), face_b=uniform(0.86, 1.02), face_cy=uniform(0.04, 0.14), jaw=uniform(0.0, 0.35),
        skin=skin_colour, hair=hair_colour,
        hair_thickness=uniform(0.03, 0.08) if bald else uniform(0.08, 0.22),
        hairline=uniform(-1.0, -0.85) if bald else uniform(-0.8, -0.45),
        hairline_curve=uniform(0.3, 0.6) if bald else uniform(0.0, 0.4),
        hair_part=uniform(-0.2, 0.2), hair_length=uniform(-0.4, 1.3),
        ear_size=uniform(0.8, 1.2),
        eye_dx=uniform(0.25, 0.35), eye_y=eye_y, eye_w=uniform(0.09, 0.13), eye_h=uniform(0.035, 0.06),
        eye_tilt=uniform(-0.15, 0.15), eye_asym=uniform(-0.015, 0.015),
        iris=IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] + rng.normal(0, 8, 3), iris_r=uniform(0.04, 0.055),
        brow_gap=uniform(0.08, 0.15), brow_len=uniform(0.1, 0.16), brow_thick=uniform(0.015, 0.04),
        brow_angle=uniform(-0.3, 0.3), brow_arch=uniform(-0.01, 0.05), brow_dark=uniform(0.5, 0.95),
        nose_y=nose_y, nose_w=uniform(0.05, 0.1), nose_shade=uniform(0.05, 0.2),
        mouth_y=nose_y + uniform(0.22, 0.34), mouth_w=uniform(0.14, 0.26), lip_upper=uniform(0.012, 0.03),
        lip_lower=uniform(0.015, 0.04), mouth_curve=uniform(-0.04, 0.05),
        lips=skin_colour * np.array([0.92, 0.66, 0.66]) + rng.normal(0, 8, 3),
        beard=uniform(0.4, 0.85) if uniform() < 0.18 else 0.0,
        moustache=uniform(0.5, 0.9) if uniform() < 0.2 else 0.0,
        glasses=uniform() < 0.15, glasses_colour=rng.uniform(10, 120, 3), glasses_size=uniform(0.12, 0.16),
        texture=_identity_texture(rng),
    )


def _smooth_noise(rng, cells, size):
    """Bilinearly upsampled Gaussian noise: float32 (size, size), about unit variance."""
    grid = rng.normal(size=(cells, cells))
    weights = np.maximum(0, 1 - np.abs(np.linspace(0, cells - 1, size)[:, None] - np.arange(cells)[None, :]))
    return (weights @ grid @ weights.T).astype(np.float32)


def _identity_texture(rng, size=96):
    """Identity texture maps over face coords [-1.1, 1.1]^2: float32 (size, size, 2) = (skin darkening, hair shade)."""
    coords = np.linspace(-1.1, 1.1, size, dtype=np.float32)
    v, u = np.meshgrid(coords, coords, indexing="ij")
    skin = 0.04 * _smooth_noise(rng, 6, size)
    spots = [(rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.75), rng.uniform(0.012, 0.025), rng.uniform(0.35, 0.6))
             for _ in range(rng.poisson(1.2))]
    if rng.uniform() < 0.15:
        spots += [(rng.normal(side * 0.35, 0.12), rng.normal(0.2, 0.08), rng.uniform(0.006, 0.012), 0.25)
                  for side in (-1, 1) for _ in range(12)]
    for centre_u, centre_v, radius, strength in spots:
        skin += strength * np.clip(1.5 - np.hypot(u - centre_u, v - centre_v) / radius, 0, 1)
    curl = rng.uniform(0, 1)
    strands = np.sin(u * rng.uniform(40, 70) + 2 * _smooth_noise(rng, 5, size))
    hair = (1 - curl) * strands + curl * _smooth_noise(rng, 24, size)
    return np.stack([np.clip(skin, -0.1, 0.6), 0.12 * hair], -1).astype(np.float32)


def _sample_nuisance(rng, count):
    """Per-image nuisance, each an array (count, 1, 1) (colours (count, 1, 1, 3))."""
    def uniform(low, high, size=()):
        return rng.uniform(low, high, (count, 1, 1) + size).astype(np.float32)

    return dict(
        shift_x=uniform(-0.08, 0.08), shift_y=uniform(-0.08, 0.08), angle=uniform(-0.21, 0.21),
        scale=uniform(0.9, 1.1), yaw=uniform(-1, 1), gaze=uniform(-0.015, 0.015),
        eye_open=np.where(rng.uniform(size=(count, 1, 1)) < 0.08, 0.2, uniform(0.7, 1.15)).astype(np.float32),
        brow_raise=uniform(-0.02, 0.03), smile=uniform(-0.03, 0.05), mouth_open=uniform(0.0, 0.012),
        hair_jitter=uniform(-0.04, 0.04), background=uniform(20, 235, (3,)), background_tilt=uniform(-0.3, 0.3),
        clothes=uniform(15, 230, (3,)), glasses_on=rng.uniform(size=(count, 1, 1)) < 0.85,
        brightness=uniform(0.7, 1.25), contrast=uniform(0.7, 1.25), light=uniform(0.0, 0.45),
        light_angle=uniform(0, 2 * np.pi), cast=(1 + rng.normal(0, 0.07, (count, 1, 1, 3))).astype(np.float32),
        blur=rng.uniform(size=count) < 0.3, noise=uniform(1.0, 7.0),
        occlusion=rng.choice(4, count, p=[0.72, 0.1, 0.1, 0.08]),  # none, bar, box anywhere, box low
        occluder=rng.uniform(0, 1, (count, 6)),
        quality=rng.integers(40, 96, count),
    )


def _soft(distance, edge):
    """Signed distance (negative inside) → coverage in [0, 1] with an `edge`-wide ramp."""
    return np.clip(0.5 - distance / edge, 0.0, 1.0)


def _ellipse(u, v, centre_u, centre_v, half_width, half_height):
    """Approximate signed distance to an axis-aligned ellipse (first-order: f / |grad f|)."""
    du, dv = (u - centre_u) / half_width, (v - centre_v) / half_height
    gradient = 2 * np.sqrt((du / half_width) ** 2 + (dv / half_height) ** 2) + 1e-6
    return (du * du + dv * dv - 1) / gradient


def _paint(canvas, coverage, colour):
    """Blend `colour` ((3,), (N, 1, 1, 3) or (N, H, W, 3)) over canvas (N, H, W, 3) in place with coverage (N, H, W).

    Only the bounding box of nonzero coverage is touched, so small features are cheap.
    """
    coverage = np.broadcast_to(coverage, canvas.shape[:3])
    rows = np.flatnonzero(coverage.any(axis=(0, 2)))
    if rows.size == 0:
        return
    cols = np.flatnonzero(coverage[:, rows[0]:rows[-1] + 1].any(axis=(0, 1)))
    window = (slice(None), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    colour = np.asarray(colour, np.float32)
    if colour.ndim == 4 and colour.shape[1] > 1:
        colour = colour[window]
    canvas[window] += coverage[window][..., None] * (colour - canvas[window])


def _face_coords(nuisance, size):
    """Image grid → face coords (u, v), each (N, H, W), through the inverse similarity transform."""
    pixels = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
    x, y = pixels[None, None, :] - nuisance["shift_x"], pixels[None, :, None] - nuisance["shift_y"]
    cos, sin = np.cos(nuisance["angle"]), np.sin(nuisance["angle"])
    return (cos * x + sin * y) / nuisance["scale"], (cos * y - sin * x) / nuisance["scale"]


def _render(face, view, size=IMAGE_SIZE):
    """Draw identity `face` under per-image nuisance `view` → float32 (N, size, size, 3) in 0..255, unlit."""
    u, v = _face_coords(view, size)
    edge = 2.4 / size / view["scale"]
    count = u.shape[0]
    grid = np.linspace(-1, 1, size, dtype=np.float32)
    canvas = np.broadcast_to(view["background"] * (1 + view["background_tilt"][..., None] * grid[None, :, None, None]),
                             (count, size, size, 3)).copy()
    texel = np.clip(((np.stack([v, u], -1) + 1.1) / 2.2 * (face["texture"].shape[0] - 1)).round().astype(np.int32),
                    0, face["texture"].shape[0] - 1)
    texture = face["texture"][texel[..., 0], texel[..., 1]]
    hair_colour = face["hair"] * (1 + texture[..., 1:2])
    outer = _soft(_ellipse(u, v, 0, face["face_cy"] - 0.4 * face["hair_thickness"],
                           face["face_a"] + face["hair_thickness"], face["face_b"] + face["hair_thickness"]), edge)
    band = _soft(np.abs(u) - face["face_a"] - face["hair_thickness"], edge) * (v > face["face_cy"])
    _paint(canvas, np.maximum(outer, band) * _soft(v - face["hair_length"], edge), hair_colour)
    _paint(canvas, _soft(_ellipse(u, v, 0, 1.55, 1.25, 0.62), edge), view["clothes"])
    _paint(canvas, _soft(np.abs(u) - 0.27, edge) * (v > 0.3), 0.82 * face["skin"])
    side, inner_u = np.sign(u), u - 0.08 * view["yaw"]
    ear_scale = face["ear_size"] * (1 - 0.25 * view["yaw"] * side)
    ears = _ellipse(np.abs(u), v, face["face_a"] + 0.01, face["eye_y"] + 0.12, 0.07 * ear_scale, 0.14)
    _paint(canvas, _soft(ears, edge), 0.9 * face["skin"])
    jaw_width = face["face_a"] * (1 - face["jaw"] * np.clip((v - face["face_cy"]) / face["face_b"], 0, 1) ** 2)
    radius = np.sqrt((u / jaw_width) ** 2 + ((v - face["face_cy"]) / face["face_b"]) ** 2)
    shading = 1 - 0.22 * np.clip(radius, 0, 1) ** 4 - 0.08 * view["yaw"] * np.clip(u, -1, 1)
    skin = face["skin"] * (shading[..., None] * (1 - texture[..., :1]))
    _paint(canvas, _soft((radius - 1) * face["face_a"], edge), skin)
    beard_line = face["mouth_y"] - 0.07 - 0.45 * (u / face["face_a"]) ** 2
    beard_zone = _soft(radius - 1, edge / face["face_a"]) * _soft(beard_line - v, 2 * edge)
    _paint(canvas, face["beard"] * beard_zone, hair_colour)
    hairline = (face["hairline"] + view["hair_jitter"] + face["hairline_curve"] * (u / face["face_a"]) ** 2
                + face["hair_part"] * u / face["face_a"])
    hairline = np.minimum(hairline, face["eye_y"] - face["brow_gap"] - 0.08)
    _paint(canvas, outer * _soft(v - hairline, edge) * (v < face["face_cy"] + 0.2), hair_colour)
    _draw_features(canvas, face, view, np.abs(inner_u) * (1 + 0.12 * np.abs(view["yaw"])), np.sign(inner_u), inner_u, v,
                   edge, hair_colour)
    return canvas


def _draw_features(canvas, face, view, mirrored_u, side, inner_u, v, edge, hair_colour):
    """Brows, eyes, nose, mouth, moustache and glasses; paired features use mirrored |u|."""
    eye_y = face["eye_y"] + face["eye_asym"] * side
    eye_du = mirrored_u - face["eye_dx"]
    eye_dv = v - eye_y + face["eye_tilt"] * eye_du
    brow_u, brow_v = mirrored_u - face["eye_dx"], v - (eye_y - face["brow_gap"] - view["brow_raise"])
    brow_v = brow_v + face["brow_angle"] * brow_u + face["brow_arch"] * (1 - (brow_u / face["brow_len"]) ** 2)
    brow_colour = face["brow_dark"] * hair_colour + (1 - face["brow_dark"]) * 0.3 * face["skin"]
    _paint(canvas, 0.9 * _soft(_ellipse(brow_u, brow_v, 0, 0, face["brow_len"], face["brow_thick"]), edge), brow_colour)
    eye_h = face["eye_h"] * view["eye_open"]
    eye = _ellipse(eye_du, eye_dv, 0, 0, face["eye_w"], eye_h)
    sclera = _soft(eye, edge)
    _paint(canvas, 0.6 * _soft(_ellipse(eye_du, eye_dv, 0, -0.01, face["eye_w"] * 1.25, face["eye_h"] * 1.6), 3 * edge),
           0.8 * face["skin"])
    _paint(canvas, sclera, np.float32([232, 228, 222]))
    iris = np.hypot(eye_du - view["gaze"] * side, eye_dv)
    _paint(canvas, sclera * _soft(iris - face["iris_r"], edge), face["iris"])
    _paint(canvas, sclera * _soft(iris - 0.45 * face["iris_r"], edge), np.float32([15, 12, 12]))
    _paint(canvas, 0.85 * _soft(np.abs(eye) - 0.007, edge) * (eye_dv < 0.3 * eye_h), np.float32([35, 25, 25]))
    nose_u = inner_u
    bridge_shadow = _ellipse(nose_u, v, 0.4 * face["nose_w"] * np.sign(view["yaw"]), face["nose_y"] - 0.12,
                             0.35 * face["nose_w"], 0.16)
    _paint(canvas, face["nose_shade"] * _soft(bridge_shadow, 4 * edge), 0.6 * face["skin"])
    _paint(canvas, 0.7 * _soft(_ellipse(mirrored_u, v, 0.6 * face["nose_w"], face["nose_y"], 0.028, 0.016), edge),
           0.35 * face["skin"])
    _paint(canvas, 0.25 * _soft(_ellipse(nose_u, v, 0, face["nose_y"] - 0.03, face["nose_w"], 0.04), 4 * edge),
           np.float32([255, 240, 230]))
    across = np.clip(nose_u / face["mouth_w"], -1.5, 1.5)
    middle = face["mouth_y"] - (face["mouth_curve"] + view["smile"]) * across ** 2
    inside = 1 - across ** 2
    lips = _soft(np.abs(v - middle - 0.5 * (face["lip_lower"] - face["lip_upper"]) * inside)
                 - 0.5 * (face["lip_lower"] + face["lip_upper"]) * inside - view["mouth_open"], edge)
    _paint(canvas, lips, face["lips"])
    _paint(canvas, _soft(np.abs(v - middle) - 0.006 - view["mouth_open"] * inside, edge) * (inside > 0),
           np.float32([60, 25, 25]))
    gap = face["mouth_y"] - face["nose_y"]
    moustache = _soft(_ellipse(nose_u, v - 0.3 * gap * across ** 2, 0, face["nose_y"] + 0.5 * gap,
                               0.9 * face["mouth_w"], 0.18 * gap), edge)
    _paint(canvas, face["moustache"] * moustache, hair_colour)
    if face["glasses"]:
        ring = np.abs(_ellipse(eye_du, v - eye_y, 0, 0, face["glasses_size"], 0.8 * face["glasses_size"])) - 0.012
        bridge = _soft(np.abs(v - eye_y + 0.02) - 0.01, edge) * (mirrored_u < face["eye_dx"] - face["glasses_size"])
        _paint(canvas, view["glasses_on"] * np.maximum(_soft(ring, edge), bridge), face["glasses_colour"])


def _finish(canvas, view, rng, size=IMAGE_SIZE):
    """Occlusion, lighting, colour cast, contrast, blur and noise → uint8 (N, size, size, 3)."""
    grid = np.linspace(-1, 1, size, dtype=np.float32)
    for index in np.flatnonzero(view["occlusion"]):  # 1: bar across the eyes; 2: box anywhere; 3: box low
        kind, (top, left, height, width, red, green) = view["occlusion"][index], view["occluder"][index]
        colour = np.float32([255 * red, 255 * green, 255 * (1 - red)])
        if kind == 1:
            rows = slice(int(size * (0.25 + 0.15 * top)), int(size * (0.42 + 0.15 * top)))
            canvas[index, rows] = 0.4 * colour
        else:
            box_h, box_w = int(size * (0.2 + 0.25 * height)), int(size * (0.2 + 0.3 * width))
            row = int((size - box_h) * (top if kind == 2 else 0.6 + 0.4 * top))
            col = int((size - box_w) * left)
            canvas[index, row:row + box_h, col:col + box_w] = colour
    direction = np.cos(view["light_angle"]) * grid[None, None, :] + np.sin(view["light_angle"]) * grid[None, :, None]
    light = 1 + view["light"] * direction
    canvas *= (view["brightness"] * light)[..., None] * view["cast"]
    mean = canvas.mean(axis=(1, 2, 3), keepdims=True)
    canvas = mean + (canvas - mean) * view["contrast"][..., None]
    blurred = view["blur"]
    if blurred.any():
        padded = np.pad(canvas[blurred], ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        shifted = [padded[:, down:down + size, right:right + size] for down in range(3) for right in range(3)]
        canvas[blurred] = sum(shifted) / 9
    canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * view["noise"][..., None]
    return np.clip(canvas.round(), 0, 255).astype(np.uint8)


def _render_identity(seed, count, size=IMAGE_SIZE):
    """(uint8 images (count, size, size, 3), JPEG qualities (count,)) of the identity with `seed`."""
    seed = tuple(int(part) for part in np.atleast_1d(seed))
    identity = _sample_identity(np.random.default_rng(seed + (0,)))
    nuisance_rng = np.random.default_rng(seed + (1,))
    nuisance = _sample_nuisance(nuisance_rng, count)
    return _finish(_render(identity, nuisance, size), nuisance, nuisance_rng, size), nuisance["quality"]


def render_identity(seed, count, size=IMAGE_SIZE):
    """`count` images of the identity with `seed` (int or tuple of ints) → uint8 (count, size, size, 3) RGB.

    The same seed always draws the same identity and the same images; the per-image
    nuisance comes from a second stream of that seed, so the images differ from one another.
    """
    return _render_identity(seed, count, size)[0]


def _encoded_identity(seed, count):
    """JPEG bytes of `count` images of the identity with `seed`, each at its own quality."""
    images, qualities = _render_identity(seed, count)
    return [tf.io.encode_jpeg(image, quality=int(quality)).numpy() for image, quality in zip(images, qualities)]


def _validate(params):
    """Reject sizes that cannot give a dataset: at least 1 image per class, 2 per held-out identity, even pairs."""
    if params["train_identities"] < 1 or params["images_per_identity"] < 1:
        raise DataError(f"synthetic data needs train_identities >= 1 and images_per_identity >= 1, got {params}.")
    identities, per_identity = params["eval_identities"], params["eval_images_per_identity"]
    pairs = params["eval_pairs"]
    if identities < 2 or per_identity < 2:
        raise DataError(
            "held-out pairs need eval_identities >= 2 and eval_images_per_identity >= 2, "
            f"got {identities} and {per_identity}."
        )
    possible_same = identities * per_identity * (per_identity - 1) // 2
    possible_different = identities * (identities - 1) // 2 * per_identity ** 2
    if pairs < 2 or pairs % 2 or pairs // 2 > min(possible_same, possible_different):
        raise DataError(
            f"eval_pairs={pairs} must be even, >= 2 and at most {2 * min(possible_same, possible_different)} "
            f"(twice the {possible_same} distinct same-identity pairs of {identities} x {per_identity} images); "
            "lower eval_pairs or raise eval_identities / eval_images_per_identity."
        )


def _generate(folder, params, workers):
    """Render and write `folder/train/id_XXXX/NNNN.jpg` and `folder/verify.bin`."""
    seed = params["seed"]
    width = max(4, len(str(params["train_identities"] - 1)))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        train = pool.map(lambda index: _encoded_identity((seed, TRAIN_SPLIT, index), params["images_per_identity"]),
                         range(params["train_identities"]))
        for index, encoded in enumerate(train):
            identity_folder = os.path.join(folder, "train", f"id_{index:0{width}d}")
            os.makedirs(identity_folder)
            for number, image in enumerate(encoded):
                with open(os.path.join(identity_folder, f"{number:04d}.jpg"), "wb") as file:
                    file.write(image)
        held_out = list(pool.map(
            lambda index: _encoded_identity((seed, EVAL_SPLIT, index), params["eval_images_per_identity"]),
            range(params["eval_identities"]),
        ))
    images = [image for encoded in held_out for image in encoded]
    labels = np.repeat(np.arange(params["eval_identities"]), params["eval_images_per_identity"])
    pairs = draw_pairs(np.random.default_rng((seed, EVAL_SPLIT, 2**32)), labels, params["eval_pairs"],
                       "synthetic held-out identities")
    paired_images = [images[index] for first, second, _ in pairs for index in (first, second)]
    write_bin(os.path.join(folder, "verify.bin"), paired_images, [issame for _, _, issame in pairs])


def make_synthetic_dataset(root, train_identities=64, images_per_identity=24, eval_identities=24,
                           eval_images_per_identity=10, eval_pairs=600, seed=0):
    """Generate (once) and return the synthetic dataset under `root`.

    Training identities and the held-out identities of `verify.bin` come from different
    seeds. The folder `root/synthetic-v<format>-<hash of all parameters>` is built in a
    temporary folder and renamed into place with a completion marker, so an existing
    complete folder is reused as is and an interrupted build never looks complete.
    """
    params = dict(train_identities=int(train_identities), images_per_identity=int(images_per_identity),
                  eval_identities=int(eval_identities), eval_images_per_identity=int(eval_images_per_identity),
                  eval_pairs=int(eval_pairs), seed=int(seed))
    _validate(params)
    description = json.dumps(dict(params, format=FORMAT_VERSION, image_size=IMAGE_SIZE), sort_keys=True)
    name = f"synthetic-v{FORMAT_VERSION}-{hashlib.sha256(description.encode()).hexdigest()[:10]}"
    final = os.path.join(os.fspath(root), name)
    dataset = SyntheticDataset(
        train_dir=os.path.join(final, "train"), bin_path=os.path.join(final, "verify.bin"),
        num_classes=params["train_identities"], num_images=params["train_identities"] * params["images_per_identity"],
    )
    if os.path.isfile(os.path.join(final, COMPLETE_MARKER)):
        return dataset
    os.makedirs(os.fspath(root), exist_ok=True)
    building = os.path.join(os.fspath(root), f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    started = time.perf_counter()
    try:
        _generate(building, params, workers=min(4, os.cpu_count() or 1))
        with open(os.path.join(building, COMPLETE_MARKER), "w") as file:
            file.write(description)
        if os.path.isdir(final) and not os.path.isfile(os.path.join(final, COMPLETE_MARKER)):
            shutil.rmtree(final)
        try:
            os.rename(building, final)
        except OSError:
            if not os.path.isfile(os.path.join(final, COMPLETE_MARKER)):
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    print(f"synthetic faces: {dataset.num_images} training images of {dataset.num_classes} identities and "
          f"{params['eval_pairs']} held-out pairs generated in {time.perf_counter() - started:.1f} s in {final}",
          flush=True)
    return dataset
