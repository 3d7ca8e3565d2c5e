"""Training augmentations, by name in `registry.AUGMENTATIONS`: (image float32 (H, W, 3) in 0..255, seed (2,)) → image."""
import tensorflow as tf

from registry import AUGMENTATIONS


@AUGMENTATIONS.register("flip")
def flip(image, seed):
    """Horizontal flip with probability 1/2."""
    return tf.image.stateless_random_flip_left_right(image, seed)


@AUGMENTATIONS.register("brightness")
def brightness(image, seed, max_delta=20.0):
    """Add a uniform offset in [-max_delta, max_delta] (pixel units)."""
    return tf.clip_by_value(tf.image.stateless_random_brightness(image, max_delta, seed), 0.0, 255.0)


@AUGMENTATIONS.register("contrast")
def contrast(image, seed, lower=0.7, upper=1.3):
    """Scale contrast around the mean by a factor in [lower, upper]."""
    return tf.clip_by_value(tf.image.stateless_random_contrast(image, lower, upper, seed), 0.0, 255.0)


@AUGMENTATIONS.register("random_crop")
def random_crop(image, seed, fraction=0.9):
    """Crop a random `fraction`-sized square and resize it back."""
    size = tf.shape(image)[:2]
    crop = tf.cast(tf.cast(size, tf.float32) * fraction, tf.int32)
    cropped = tf.image.stateless_random_crop(image, tf.concat([crop, [3]], 0), seed)
    return tf.image.resize(cropped, size)


@AUGMENTATIONS.register("random_erasing")
def random_erasing(image, seed, probability=0.5, max_fraction=0.3):
    """With `probability`, fill a random rectangle of up to `max_fraction` of each side with grey."""
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
    return tf.where(erase, 127.5, image)
