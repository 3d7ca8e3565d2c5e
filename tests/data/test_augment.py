"""The face-quality augmentations (lowres, blur, jpeg, grayscale): how often they apply, the distribution of their
random parameters, and their output against NumPy / PIL references; `augment_args` from the recipe to the pipeline."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.augment import (INTERPOLATIONS, blur_draws, down_up, gaussian_blur, jpeg, jpeg_draws, lowres_draws)
from data.pipeline import train_dataset
from recipes.recipe import RecipeError
from recipes.resolve import resolve_recipe
from recipes.train import RunRefused, check_augmentations
from registry import AUGMENTATIONS

COUNT = 800
NOISE = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def over_seeds(function, count=COUNT):
    """[function(seed) for seeds (5, 0) .. (5, count - 1)] evaluated in one tf.data pass, as numpy (stacked per output)."""
    dataset = tf.data.Dataset.range(count).map(lambda index: function(tf.stack([tf.constant(5, tf.int64), index])))
    return next(iter(dataset.batch(count).as_numpy_iterator()))


def within_binomial(fraction, probability, count=COUNT, sigmas=4.5):
    return abs(fraction - probability) <= sigmas * np.sqrt(probability * (1 - probability) / count) + 1e-9


@pytest.mark.parametrize("name, options, probability", [
    ("lowres", {}, 0.2), ("blur", {}, 0.2), ("jpeg", {}, 0.5), ("grayscale", {}, 0.1),
    ("lowres", {"probability": 0.1, "min_scale": 0.5, "max_scale": 0.8}, 0.1), ("jpeg", {"probability": 0.7}, 0.7),
])
def test_each_applies_with_its_probability(name, options, probability):
    augmentation = AUGMENTATIONS.get(name)
    image = tf.constant(NOISE)
    outputs = over_seeds(lambda seed: augmentation(image, seed, **options))
    changed = np.any(outputs != NOISE[None], axis=(1, 2, 3)).mean()
    assert within_binomial(changed, probability), (name, changed)


def test_lowres_scales_are_uniform_in_range_and_methods_uniform():
    for low, high in ((0.2, 1.0), (0.5, 0.8)):
        apply, scale, down, up = over_seeds(lambda seed: lowres_draws(seed, 1.0, low, high))
        assert apply.all() and scale.min() >= low and scale.max() < high
        assert scale.min() < low + 0.02 * (high - low) and scale.max() > high - 0.02 * (high - low)
        assert abs(scale.mean() - (low + high) / 2) < 4 * (high - low) / np.sqrt(12 * COUNT)
        for methods in (down, up):
            counts = np.bincount(methods, minlength=len(INTERPOLATIONS))
            assert len(counts) == len(INTERPOLATIONS) and all(within_binomial(c / COUNT, 0.2) for c in counts)


def test_down_up_is_the_resize_it_names():
    image = np.random.default_rng(1).uniform(0, 255, (32, 32, 3)).astype(np.float32)
    index = {name: number for number, name in enumerate(INTERPOLATIONS)}
    # area down by 2 is the mean of each 2x2 block; nearest up by 2 (half-pixel centres) repeats it
    blocks = image.reshape(16, 2, 16, 2, 3).mean(axis=(1, 3))
    expected = blocks.repeat(2, axis=0).repeat(2, axis=1)
    out = down_up(tf.constant(image), 0.5, index["area"], index["nearest"]).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-3)
    # nearest down by 2 keeps the odd rows and columns (sample centres at 2i + 1)
    out = down_up(tf.constant(image), 0.5, index["nearest"], index["nearest"]).numpy()
    kept = 2 * (np.arange(32) // 2) + 1
    np.testing.assert_allclose(out, image[kept][:, kept], atol=1e-3)
    # the small side is floor(scale * 32): 0.2 gives 6 pixels, so at most 6 distinct rows with nearest
    out = down_up(tf.constant(image), 0.2, index["nearest"], index["nearest"]).numpy()
    assert len(np.unique(out[:, 0, 0])) == 6


def numpy_blur(image, sigma, radius):
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel /= kernel.sum()
    padded = np.pad(image.astype(np.float64), [(radius, radius), (radius, radius), (0, 0)], mode="reflect")
    rows = sum(weight * padded[offset + radius:offset + radius + image.shape[0]] for offset, weight in
               zip(offsets, kernel))
    return sum(weight * rows[:, offset + radius:offset + radius + image.shape[1]] for offset, weight in
               zip(offsets, kernel))


@pytest.mark.parametrize("radius, sigma", [(1, 0.8), (2, 1.1), (3, 1.4)])
def test_blur_is_dali_window_gaussian_with_mirrored_borders(radius, sigma):
    out = gaussian_blur(tf.constant(NOISE), radius, max_radius=3).numpy()
    np.testing.assert_allclose(out, numpy_blur(NOISE, sigma, radius), atol=1e-3)


def test_blur_radius_is_uniform_over_one_to_max():
    for max_radius in (2, 3):
        apply, radius = over_seeds(lambda seed: blur_draws(seed, 0.2, max_radius))
        assert within_binomial(apply.mean(), 0.2)
        counts = np.bincount(radius, minlength=max_radius + 1)
        assert counts[0] == 0 and len(counts) == max_radius + 1
        assert all(within_binomial(count / COUNT, 1 / max_radius) for count in counts[1:])


def test_jpeg_quality_is_uniform_over_the_inclusive_range():
    apply, quality = over_seeds(lambda seed: jpeg_draws(seed, 0.5, 2, 20))
    assert within_binomial(apply.mean(), 0.5)
    counts = np.bincount(quality, minlength=21)
    assert counts[:2].sum() == 0 and len(counts) == 21 and counts[2] > 0 and counts[20] > 0
    assert all(within_binomial(count / COUNT, 1 / 19) for count in counts[2:])


def smooth_face():
    axis = np.linspace(0, 255, 112)
    return np.stack([np.add.outer(axis, axis) / 2, np.add.outer(axis, 255 - axis) / 2,
                     np.outer(np.sin(axis / 20) * 60 + 128, np.ones(112))], -1).astype(np.uint8)


def test_jpeg_is_recompression_at_the_drawn_quality_as_pil_does_it():
    face = smooth_face()
    distortion = []
    for quality in (2, 20, 75):
        ours = jpeg(tf.constant(face), tf.constant([0, 0], tf.int64), probability=1.0, min_quality=quality,
                    max_quality=quality).numpy().astype(float)
        encoded = io.BytesIO()
        Image.fromarray(face).save(encoded, format="JPEG", quality=quality)
        pil = np.asarray(Image.open(encoded)).astype(float)
        assert np.abs(ours - pil).mean() < 1.5 and np.abs(ours - pil).max() <= 4  # decoders round differently
        distortion.append(np.abs(ours - face).mean())
    assert distortion[0] > 2 * distortion[1] > 2 * distortion[2] > 0


def test_grayscale_puts_the_luma_in_every_channel():
    out = AUGMENTATIONS.get("grayscale")(tf.constant(NOISE), tf.constant([0, 0], tf.int64), probability=1.0).numpy()
    luma = NOISE.astype(float) @ np.array([0.2989, 0.5870, 0.1140])
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert np.abs(out[..., 0] - luma).max() <= 0.5 + 1e-3


def test_augment_args_are_checked_against_the_augmentation_and_reach_the_pipeline(tmp_path):
    recipe = resolve_recipe("softmax", {"augment": "[flip,grayscale,jpeg]", "augment_args.grayscale.probability": 1,
                                        "augment_args.jpeg.min_quality": "30"})
    assert recipe.augment_args == {"grayscale": {"probability": 1.0}, "jpeg": {"min_quality": 30}}
    assert recipe.resolved()["augment_args"]["jpeg"] == {"probability": 0.5, "min_quality": 30, "max_quality": 20}
    with pytest.raises(RecipeError, match=r"--augment_args.jpeg.quality: .*option of augmentation 'jpeg'.*min_quality"):
        resolve_recipe("softmax", {"augment": "[jpeg]", "augment_args.jpeg.quality": 30})
    with pytest.raises(RecipeError, match="--augment_args.blur: augmentation 'blur' is not in --augment"):
        resolve_recipe("softmax", {"augment_args.blur.probability": 0.5})
    with pytest.raises(RunRefused, match=r"--augment jpeg: .*min_quality <= max_quality"):
        check_augmentations(recipe.augment, recipe.augment_args)  # 30 > 20: refused before any data is read
    path = tmp_path / "face.png"
    Image.fromarray(NOISE).save(path)
    images, _ = next(iter(train_dataset([str(path)] * 4, [0] * 4, 4, image_size=32, augment=recipe.augment,
                                        augment_args={"grayscale": {"probability": 1.0}})))
    assert np.all(images[..., 0] == images[..., 1]) and np.all(images[..., 1] == images[..., 2])
