"""JPEG pixels as the field decodes them: libjpeg's accurate integer IDCT, equal to PIL's (and OpenCV's) exactly."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.bins import load_bin_images, write_bin
from data.decode import decode_rgb
from data.synthetic import render_identity

# (side, JPEG quality, chroma subsampling: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0), grey last
CASES = [(112, 95, 2), (112, 75, 0), (112, 50, 1), (97, 90, 2), (250, 100, 2), (41, 30, 2), (112, 95, None)]


def face_jpeg(side, quality, subsampling, seed=0):
    """A synthetic face, `side` × `side`, with sensor-like noise, JPEG-encoded by PIL (grey: subsampling None)."""
    face = Image.fromarray(render_identity(seed, 1, 112)[0]).resize((side, side), Image.BILINEAR)
    noisy = np.asarray(face, np.float64) + np.random.default_rng(seed).normal(0, 6, (side, side, 3))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    if subsampling is None:
        image.convert("L").save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return buffer.getvalue()


def pil_rgb(encoded):
    return np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))


@pytest.mark.parametrize("side, quality, subsampling", CASES)
def test_jpeg_decode_equals_pils_exactly(side, quality, subsampling):
    encoded = face_jpeg(side, quality, subsampling)
    np.testing.assert_array_equal(decode_rgb(tf.constant(encoded)).numpy(), pil_rgb(encoded))


def test_the_fast_idct_would_differ():
    """The comparison can fail: TensorFlow's default JPEG decode (fast IDCT) gives other pixels on these faces."""
    differing = 0
    for side, quality, subsampling in CASES:
        encoded = face_jpeg(side, quality, subsampling)
        fast = tf.io.decode_image(encoded, channels=3, expand_animations=False).numpy()
        differing += int(np.any(fast != pil_rgb(encoded)))
    assert differing >= len(CASES) // 2


def test_bin_images_decode_inside_tf_data_like_pil(tmp_path):
    """The `.bin` reader (a tf.data map, graph mode) decodes with the same accurate IDCT."""
    encoded = [face_jpeg(112, 90, 2, seed) for seed in range(4)]
    write_bin(tmp_path / "faces.bin", encoded, [True, False])
    images, _ = load_bin_images(tmp_path / "faces.bin", image_size=112)
    np.testing.assert_array_equal(images, np.stack([pil_rgb(item) for item in encoded]))
