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
