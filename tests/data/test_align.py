"""Face alignment: the Umeyama estimate and the bilinear warp, against closed forms and an independent warp."""
import numpy as np
import pytest

from data.align import ARCFACE_TEMPLATE, LandmarkError, align_face, alignment_matrix, template_points, umeyama_similarity
from data.synthetic import render_identity


def similarity(scale, degrees, shift):
    angle = np.deg2rad(degrees)
    matrix = np.eye(3)
    matrix[:2, :2] = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix[:2, 2] = shift
    return matrix


def apply(matrix, points):
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def numpy_warp(image, matrix, shape):
    """Independent bilinear warp (pixel centres at integer coordinates, zeros outside), output = image ∘ matrix⁻¹."""
    rows, columns = np.mgrid[0:shape[0], 0:shape[1]]
    source = apply(np.linalg.inv(matrix), np.stack([columns.ravel(), rows.ravel()], axis=1).astype(np.float64))
    x, y = source[:, 0], source[:, 1]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    result = np.zeros((x.size, image.shape[2]))
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
            inside = (xi >= 0) & (xi < image.shape[1]) & (yi >= 0) & (yi < image.shape[0])
            result[inside] += weight[inside, None] * image[yi[inside], xi[inside]]
    return result.reshape(shape[0], shape[1], image.shape[2])


def test_umeyama_equals_the_closed_form_least_squares_similarity():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 200, size=(5, 2))
    destination = apply(similarity(0.6, -25, (10, 5)), source) + rng.normal(scale=2.0, size=(5, 2))
    # x' = a x - b y + tx, y' = b x + a y + ty: a linear least-squares problem in (a, b, tx, ty).
    design = np.zeros((10, 4))
    design[0::2] = np.stack([source[:, 0], -source[:, 1], np.ones(5), np.zeros(5)], axis=1)
    design[1::2] = np.stack([source[:, 1], source[:, 0], np.zeros(5), np.ones(5)], axis=1)
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, destination.ravel(), rcond=None)
    expected = np.array([[a, -b, tx], [b, a, ty], [0, 0, 1]])
    np.testing.assert_allclose(umeyama_similarity(source, destination), expected, atol=1e-9)


def test_alignment_matrix_inverts_a_known_similarity():
    known = similarity(1.7, 20, (30, 40))
    matrix = alignment_matrix(apply(known, ARCFACE_TEMPLATE.astype(np.float64)))
    np.testing.assert_allclose(matrix, np.linalg.inv(known), atol=1e-5)


def test_template_for_other_sizes_follows_insightface_estimate_norm():
    np.testing.assert_allclose(template_points(224), ARCFACE_TEMPLATE * 2.0, rtol=1e-6)
    expected = ARCFACE_TEMPLATE.astype(np.float64)
    expected[:, 0] += 8.0
    np.testing.assert_allclose(template_points(128), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="not a multiple of 112 or 128"):
        template_points(100)


def test_align_face_recovers_a_face_warped_by_a_known_similarity():
    face = render_identity(7, 1)[0].astype(np.float64)
    known = similarity(1.7, 20, (60, 30))
    scene = np.clip(np.round(numpy_warp(face, known, (260, 240))), 0, 255).astype(np.uint8)
    aligned = align_face(scene, apply(known, ARCFACE_TEMPLATE.astype(np.float64)))
    assert aligned.dtype == np.uint8 and aligned.shape == (112, 112, 3)
    difference = np.abs(aligned.astype(np.float64) - face)[2:-2, 2:-2]  # the 1-pixel rim mixes with the zero fill
    assert difference.mean() < 2.0, difference.mean()
    assert np.percentile(difference, 99) < 8, np.percentile(difference, 99)


def test_a_pure_shift_by_whole_pixels_is_exact():
    rng = np.random.default_rng(1)
    scene = rng.integers(0, 256, size=(150, 160, 3), dtype=np.uint8)
    landmarks = ARCFACE_TEMPLATE.astype(np.float64) + (17, 9)
    np.testing.assert_array_equal(align_face(scene, landmarks), scene[9:9 + 112, 17:17 + 112])


@pytest.mark.parametrize("landmarks, message", [
    (np.zeros((4, 2)), "need 5 landmarks"),
    (np.full((5, 2), np.nan), "not all finite"),
    (np.ones((5, 2)), "coincide"),
])
def test_bad_landmarks_are_named(landmarks, message):
    with pytest.raises(LandmarkError, match=message):
        alignment_matrix(landmarks)
