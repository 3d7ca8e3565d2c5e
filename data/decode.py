"""Encoded image bytes → RGB pixels, as the field decodes them: the one decode of training, evaluation and tools.

JPEG is decoded with libjpeg's accurate integer IDCT (`dct_method="INTEGER_ACCURATE"`, libjpeg's
JDCT_ISLOW, its default), which OpenCV (`cv2.imread`, what insightface reads with), PIL and MXNet
use; `tf.io.decode_image` uses the fast integer IDCT, whose pixels differ by up to 15 grey levels
on insightface's `.bin` faces. PNG, BMP and GIF (first frame) decode with `tf.io.decode_image`.
"""
import tensorflow as tf


def decode_rgb(encoded):
    """Encoded JPEG/PNG/BMP/GIF bytes (scalar string tensor) → uint8 (H, W, 3); grey repeated, alpha dropped."""
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.ensure_shape(tf.io.decode_image(encoded, channels=3, expand_animations=False), (None, None, 3)))


def decode_face(encoded, image_size):
    """Encoded JPEG/PNG bytes → uint8 (image_size, image_size, 3).

    `decode_rgb`; grey becomes RGB by repeating the channel; RGBA drops alpha (as PIL's
    `convert("RGB")`); other sizes are resized bilinearly and rounded. Training images and
    verification images (`data.bins`) are both decoded by this function.
    """
    image = decode_rgb(encoded)

    def resize():
        resized = tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size))
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    image = tf.cond(tf.reduce_all(tf.shape(image)[:2] == image_size), lambda: image, resize)
    return tf.ensure_shape(image, (image_size, image_size, 3))
