"""Face alignment to the ArcFace 112×112 template from five landmarks (eyes, nose tip, mouth corners).

Source: deepinsight/insightface `python-package/insightface/utils/face_align.py` (`arcface_dst`,
`estimate_norm`, `norm_crop`) and `recognition/arcface_torch/eval_ijbc.py` (`Embedding.get`):
``tform = skimage.transform.SimilarityTransform(); tform.estimate(landmark5, dst)`` then
``cv2.warpAffine(img, tform.params[:2], (size, size), borderValue=0)`` (bilinear). Here the estimate is
`umeyama_similarity`, a NumPy transcription of scikit-image's `_umeyama`
(`skimage/transform/_geometric.py`; Umeyama, PAMI 1991, doi:10.1109/34.88573), and the warp is
TensorFlow's `ImageProjectiveTransformV3` (bilinear, zero fill), which like OpenCV puts pixel
centres at integer coordinates. No OpenCV or scikit-image needed.
"""
import numpy as np
import tensorflow as tf

from data.errors import DataError

ARCFACE_TEMPLATE = np.array([
    [38.2946, 51.6963],  # left eye (in the image)
    [73.5318, 51.5014],  # right eye
    [56.0252, 71.7366],  # nose tip
    [41.5493, 92.3655],  # left mouth corner
    [70.7299, 92.2041],  # right mouth corner
], dtype=np.float32)
"""The five ArcFace reference points (x, y) in pixels of a 112×112 aligned face (insightface `arcface_dst`)."""


class AlignmentError(DataError):
    """An alignment that cannot be made (an output size the template does not scale to, unusable landmarks)."""


class LandmarkError(AlignmentError):
    """Landmarks that cannot define an alignment (wrong shape, not finite, all in one point)."""


def template_points(size=112):
    """ARCFACE_TEMPLATE for a (size, size) output, as insightface's `estimate_norm` scales it.

    size a multiple of 112: the points times size/112; a multiple of 128: times size/128, shifted
    right by 8·size/128 (the 112 face centred in a 128 crop). Returns (5, 2) float64.
    """
    size = int(size)
    if size > 0 and size % 112 == 0:
        return ARCFACE_TEMPLATE.astype(np.float64) * (size / 112.0)
    if size > 0 and size % 128 == 0:
        points = ARCFACE_TEMPLATE.astype(np.float64) * (size / 128.0)
        points[:, 0] += 8.0 * size / 128.0
        return points
    raise AlignmentError(f"aligned face size {size} is not a multiple of 112 or 128 (insightface's estimate_norm); "
                         "use 112 for the ArcFace crop.")


def umeyama_similarity(source, destination):
    """(3, 3) homogeneous similarity (scale, rotation, shift) mapping `source` onto `destination` in least squares.

    Umeyama's method exactly as scikit-image's `_umeyama(src, dst, estimate_scale=True)`:
    ``A = dst_c.T @ src_c / n``; ``U, S, V = svd(A)``; ``d = diag(1, ±1)`` (−1 when det A < 0, no
    reflection); ``R = U d V``; ``scale = (S @ d) / var(src).sum()``; ``t = mean(dst) − scale R mean(src)``.
    source, destination: (n, 2) points (x, y). Returns NaNs when `source` is degenerate (rank 0).
    """
    source = np.asarray(source, dtype=np.float64)
    destination = np.asarray(destination, dtype=np.float64)
    count, dim = source.shape
    source_mean, destination_mean = source.mean(axis=0), destination.mean(axis=0)
    source_centred, destination_centred = source - source_mean, destination - destination_mean
    covariance = destination_centred.T @ source_centred / count
    signs = np.ones(dim)
    if np.linalg.det(covariance) < 0:
        signs[dim - 1] = -1
    transform = np.eye(dim + 1)
    left, singular, right = np.linalg.svd(covariance)
    rank = np.linalg.matrix_rank(covariance)
    if rank == 0:
        return np.nan * transform
    if rank == dim - 1:
        if np.linalg.det(left) * np.linalg.det(right) > 0:
            transform[:dim, :dim] = left @ right
        else:
            last = signs[dim - 1]
            signs[dim - 1] = -1
            transform[:dim, :dim] = left @ np.diag(signs) @ right
            signs[dim - 1] = last
    else:
        transform[:dim, :dim] = left @ np.diag(signs) @ right
    scale = 1.0 / source_centred.var(axis=0).sum() * (singular @ signs)
    transform[:dim, dim] = destination_mean - scale * (transform[:dim, :dim] @ source_mean)
    transform[:dim, :dim] *= scale
    return transform


def alignment_matrix(landmarks5, size=112):
    """(3, 3) similarity mapping image pixel coordinates onto the aligned (size, size) face.

    landmarks5: (5, 2) points (x, y) in pixels, or the 10 numbers x1 y1 … x5 y5. Raises
    LandmarkError for another shape, non-finite values or points that define no transform.
    """
    points = np.asarray(landmarks5, dtype=np.float64)
    if points.size != 10:
        raise LandmarkError(f"need 5 landmarks (x, y), got an array of shape {points.shape}.")
    points = points.reshape(5, 2)
    if not np.all(np.isfinite(points)):
        raise LandmarkError(f"landmarks are not all finite numbers: {points.tolist()}.")
    matrix = umeyama_similarity(points, template_points(size))
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix[:2, :2])) < 1e-12:
        raise LandmarkError(f"the 5 landmarks {points.tolist()} coincide; they define no alignment.")
    return matrix


def projective_parameters(matrix):
    """The 8 parameters `ImageProjectiveTransformV3` wants for the forward (3, 3) `matrix`: its inverse, row-major.

    The op maps each output pixel (x, y) to the input point ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k),
    k = c0 x + c1 y + 1, so it takes the inverse of the image → aligned map. Returns (8,) float32.
    """
    inverse = np.linalg.inv(np.asarray(matrix, dtype=np.float64))
    inverse = inverse / inverse[2, 2]
    return inverse.reshape(9)[:8].astype(np.float32)


def warp_to_aligned(image, parameters, size=112):
    """Bilinear warp of one image (H, W, C) by `projective_parameters` (8,) to uint8 (size, size, C), zeros outside.

    TensorFlow ops only, so it runs inside a tf.data map. Values are rounded to the nearest integer.
    """
    image = tf.cast(image, tf.float32)[tf.newaxis]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=image, transforms=tf.reshape(tf.cast(parameters, tf.float32), (1, 8)),
        output_shape=tf.constant([size, size], tf.int32), fill_value=tf.constant(0.0), interpolation="BILINEAR",
        fill_mode="CONSTANT")
    return tf.cast(tf.clip_by_value(tf.round(warped[0]), 0.0, 255.0), tf.uint8)


def align_face(image, landmarks5, size=112):
    """The face of `image` aligned to the ArcFace template: uint8 (size, size, 3).

    image: (H, W, 3) uint8 (or float in 0..255) RGB; landmarks5: (5, 2) points (x, y) in its pixels
    (left eye, right eye, nose tip, left and right mouth corner, as the person appears in the image).
    """
    parameters = projective_parameters(alignment_matrix(landmarks5, size))
    return warp_to_aligned(np.asarray(image), parameters, size).numpy()
