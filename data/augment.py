"""Training augmentations, by name in `registry.AUGMENTATIONS`: (image (H, W, 3) in 0..255, seed (2,)) → image.

Each keeps its input's dtype: the pipeline augments uint8 images (a quarter of the memory
traffic of float32) and casts whole batches to float32; float32 input works the same way.
Arithmetic is done in float32 and rounded back for uint8.
"""
import tensorflow as tf

from registry import AUGMENTATIONS


def _like(result, image):
    """Float `result` in the dtype of `image`: clipped to 0..255, and rounded for uint8."""
    result = tf.clip_by_value(result, 0.0, 255.0)
    if image.dtype == tf.uint8:
        return tf.cast(tf.round(result), tf.uint8)
    return tf.cast(result, image.dtype)


@AUGMENTATIONS.register("flip")
def flip(image, seed):
    """Horizontal flip with probability 1/2."""
    return tf.image.stateless_random_flip_left_right(image, seed)


@AUGMENTATIONS.register("brightness")
def brightness(image, seed, max_delta=20.0):
    """Add a uniform offset in [-max_delta, max_delta] (pixel units)."""
    return _like(tf.image.stateless_random_brightness(tf.cast(image, tf.float32), max_delta, seed), image)


@AUGMENTATIONS.register("contrast")
def contrast(image, seed, lower=0.7, upper=1.3):
    """Scale contrast around the mean by a factor in [lower, upper]."""
    return _like(tf.image.stateless_random_contrast(tf.cast(image, tf.float32), lower, upper, seed), image)


@AUGMENTATIONS.register("random_crop")
def random_crop(image, seed, fraction=0.9):
    """Crop a random `fraction`-sized square and resize it back (bilinear)."""
    size = tf.shape(image)[:2]
    crop = tf.cast(tf.cast(size, tf.float32) * fraction, tf.int32)
    cropped = tf.image.stateless_random_crop(image, tf.concat([crop, [3]], 0), seed)
    return _like(tf.image.resize(cropped, size), image)


@AUGMENTATIONS.register("random_erasing")
def random_erasing(image, seed, probability=0.5, max_fraction=0.3):
    """With `probability`, fill a random rectangle of up to `max_fraction` of each side with grey (128)."""
    uniform = tf.random.stateless_uniform([5], seed)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    box_h = tf.cast(uniform[0] * max_fraction * tf.cast(height, tf.float32), tf.int32) + 1
    box_w = tf.cast(uniform[1] * max_fraction * tf.cast(width, tf.float32), tf.int32) + 1
    top = tf.cast(uniform[2] * tf.cast(height - box_h, tf.float32), tf.int32)
    left = tf.cast(uniform[3] * tf.cast(width - box_w, tf.float32), tf.int32)
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
    erase = inside[..., None] & (uniform[4] < probability)
    return tf.where(erase, tf.constant(128, image.dtype), image)


# Face-specific degradations (image quality as in surveillance and web photos). Each draws its random
# numbers from the image's seed with `tf.random.stateless_uniform`, so the stream stays reproducible.
INTERPOLATIONS = ("nearest", "bilinear", "area", "bicubic", "lanczos3")


def _uniforms(seed, count):
    """`count` independent U[0, 1) float32 numbers, a pure function of the image's seed (2,)."""
    return tf.random.stateless_uniform([count], seed)


def _integer(uniform, low, high):
    """An int32 uniform over low..high (both included) from a U[0, 1) number."""
    return tf.minimum(low + tf.cast(tf.floor(uniform * float(high - low + 1)), tf.int32), high)


def _check_probability(name, probability):
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"--augment_args.{name}.probability={probability!r} must be in [0, 1].")


def lowres_draws(seed, probability=0.2, min_scale=0.2, max_scale=1.0):
    """(apply: bool, scale: float32 in [min_scale, max_scale), down method index, up method index into
    INTERPOLATIONS) of `lowres` for one image."""
    _check_probability("lowres", probability)
    if not 0.0 < min_scale <= max_scale <= 1.0:
        raise ValueError(f"--augment_args.lowres: need 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}.")
    uniform = _uniforms(seed, 4)
    count = len(INTERPOLATIONS)
    return (uniform[0] < probability, min_scale + uniform[1] * (max_scale - min_scale),
            _integer(uniform[2], 0, count - 1), _integer(uniform[3], 0, count - 1))


def down_up(image, scale, down_method, up_method):
    """`image` (H, W, C) resized to (max(1, ⌊scale·H⌋), max(1, ⌊scale·W⌋)) with INTERPOLATIONS[down_method],
    then back to (H, W) with INTERPOLATIONS[up_method]; float32 (not clipped: bicubic and Lanczos overshoot)."""
    size = tf.shape(image)[:2]
    small = tf.maximum(tf.cast(tf.floor(scale * tf.cast(size, tf.float32)), tf.int32), 1)
    pixels = tf.cast(image, tf.float32)

    def resize(picture, target, method):
        return tf.switch_case(tf.convert_to_tensor(method, tf.int32),
                              [lambda name=name: tf.image.resize(picture, target, method=name)
                               for name in INTERPOLATIONS])

    return resize(resize(pixels, small, down_method), size, up_method)


@AUGMENTATIONS.register("lowres")
def lowres(image, seed, probability=0.2, min_scale=0.2, max_scale=1.0):
    """Low resolution: with `probability`, down-sample by a scale s ~ U[min_scale, max_scale) and up again.

    AdaFace's `low_res_augmentation` (mk-minchul/AdaFace, dataset/augmenter.py; its training scripts
    pass --low_res_augmentation_prob 0.2): side ⌊s·112⌋ with s ~ U(0.2, 1.0), each of the two resizes
    with an interpolation drawn from OpenCV's nearest, linear, area, cubic, Lanczos-4 (here:
    INTERPOLATIONS, Lanczos-3 the closest TensorFlow has). arcface_torch's DALI pipeline
    (deepinsight/insightface, recognition/arcface_torch/dataset.py, `dali_aug`) uses probability 0.1
    and a side of U(56, 89.6) pixels: --augment_args.lowres.probability=0.1, .min_scale=0.5, .max_scale=0.8.
    """
    apply, scale, down_method, up_method = lowres_draws(seed, probability, min_scale, max_scale)
    return tf.cond(apply, lambda: _like(down_up(image, scale, down_method, up_method), image), lambda: image)


def blur_draws(seed, probability=0.2, max_radius=2):
    """(apply: bool, radius: int32 in 1..max_radius) of `blur` for one image."""
    _check_probability("blur", probability)
    if max_radius < 1:
        raise ValueError(f"--augment_args.blur.max_radius={max_radius!r} must be >= 1.")
    uniform = _uniforms(seed, 2)
    return uniform[0] < probability, _integer(uniform[1], 1, int(max_radius))


def blur_sigma(radius):
    """The Gaussian's standard deviation (pixels) of a window of `radius`: 0.3·(radius − 1) + 0.8, the rule
    of DALI's `gaussian_blur` when only the window is given (OpenCV's `getGaussianKernel` rule)."""
    return 0.3 * (tf.cast(radius, tf.float32) - 1.0) + 0.8


def gaussian_blur(image, radius, max_radius):
    """`image` (H, W, C) convolved with a (2·radius + 1)² Gaussian of `blur_sigma(radius)`, normalised to sum 1,
    as two 1-D passes; borders mirrored without repeating the edge pixel (DALI's default, reflect-101); float32."""
    offsets = tf.range(-max_radius, max_radius + 1, dtype=tf.float32)
    weights = tf.exp(-tf.square(offsets) / (2.0 * tf.square(blur_sigma(radius))))
    weights = tf.where(tf.abs(offsets) <= tf.cast(radius, tf.float32), weights, 0.0)
    weights /= tf.reduce_sum(weights)
    channels = image.shape[-1] or 3
    pixels = tf.pad(tf.cast(image, tf.float32)[None], [[0, 0], [max_radius] * 2, [max_radius] * 2, [0, 0]], "REFLECT")
    rows = tf.tile(tf.reshape(weights, [-1, 1, 1, 1]), [1, 1, channels, 1])
    columns = tf.tile(tf.reshape(weights, [1, -1, 1, 1]), [1, 1, channels, 1])
    pixels = tf.nn.depthwise_conv2d(pixels, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(pixels, columns, [1, 1, 1, 1], "VALID")[0]


@AUGMENTATIONS.register("blur")
def blur(image, seed, probability=0.2, max_radius=2):
    """Gaussian blur: with `probability`, a (2r+1)² window, r uniform over 1..max_radius, σ = 0.3(r − 1) + 0.8.

    arcface_torch's DALI pipeline (deepinsight/insightface, recognition/arcface_torch/dataset.py,
    `dali_aug`): probability 0.2, `fn.gaussian_blur(window_size=2r + 1)` with r from
    `fn.random.uniform(range=(1, 2), dtype=INT32)`, which rounds to 1 or 2: σ 0.8 (3×3) or 1.1 (5×5).
    """
    apply, radius = blur_draws(seed, probability, max_radius)
    return tf.cond(apply, lambda: _like(gaussian_blur(image, radius, int(max_radius)), image), lambda: image)


def jpeg_draws(seed, probability=0.5, min_quality=2, max_quality=20):
    """(apply: bool, quality: int32 in min_quality..max_quality, both included) of `jpeg` for one image."""
    _check_probability("jpeg", probability)
    if not 1 <= min_quality <= max_quality <= 100:
        raise ValueError(f"--augment_args.jpeg: need 1 <= min_quality <= max_quality <= 100, got {min_quality}, "
                         f"{max_quality}.")
    uniform = _uniforms(seed, 2)
    return uniform[0] < probability, _integer(uniform[1], int(min_quality), int(max_quality))


@AUGMENTATIONS.register("jpeg")
def jpeg(image, seed, probability=0.5, min_quality=2, max_quality=20):
    """JPEG re-compression: with `probability`, encode at a quality q uniform over min_quality..max_quality, decode.

    insightface's `compress_aug` (deepinsight/insightface, recognition/arcface_mxnet/image_iter.py,
    also partial_fc/mxnet and subcenter_arcface): PIL JPEG at `random.randint(2, 20)`, applied to half
    the images when color_jittering > 1. Its ICCV21-MFR challenge pipeline
    (challenges/iccv21-mfr/dataset_mask.py) uses Albumentations' ImageCompression at 30..80:
    --augment_args.jpeg.min_quality=30, .max_quality=80.
    """
    apply, quality = jpeg_draws(seed, probability, min_quality, max_quality)

    def recompress():
        pixels = tf.cast(tf.round(tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 255.0)), tf.uint8)
        return _like(tf.cast(tf.image.adjust_jpeg_quality(pixels, quality), tf.float32), image)

    return tf.cond(apply, recompress, lambda: image)


@AUGMENTATIONS.register("grayscale")
def grayscale(image, seed, probability=0.1):
    """With `probability`, every channel becomes the luma 0.2989 R + 0.5870 G + 0.1140 B (`tf.image.rgb_to_grayscale`).

    arcface_torch's DALI pipeline (deepinsight/insightface, recognition/arcface_torch/dataset.py,
    `dali_random_gray(images, 0.1)`: HSV saturation 0 for a tenth of the images). Keras_insightface's
    RandAugment `color` op (leondgarse/Keras_insightface, augment.py) blends towards the same grey image.
    """
    _check_probability("grayscale", probability)
    apply = _uniforms(seed, 1)[0] < probability

    def grey():
        luma = tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))
        return _like(tf.repeat(luma, 3, axis=-1), image)

    return tf.cond(apply, grey, lambda: image)
