"""The tf.data training pipeline: shuffled file indices → parallel decode → augment → batch → prefetch."""
import tensorflow as tf

from registry import AUGMENTATIONS


def decode_face(encoded, image_size):
    """Encoded JPEG/PNG bytes → float32 (image_size, image_size, 3) in 0..255 (grey/RGBA become RGB)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size))
    return tf.ensure_shape(image, (image_size, image_size, 3))


def train_dataset(paths, labels, batch_size, image_size=112, augment=("flip",), seed=0, deterministic=False):
    """An endless dataset of (images float32 (B, S, S, 3) in 0..255, labels int32 (B,)).

    Shuffles indices, not images, so memory stays small for millions of files; each epoch
    reshuffles. Augmentations use stateless seeds from (seed, epoch-step position), so with
    `deterministic=True` the stream is identical run to run.
    """
    if len(paths) < batch_size:
        raise ValueError(
            f"the dataset has {len(paths)} images, fewer than one batch of {batch_size}; "
            "use a smaller --batch_size or more data."
        )
    augmentations = [AUGMENTATIONS.get(name) for name in augment]
    path_table = tf.constant(list(paths))
    label_table = tf.constant(labels, dtype=tf.int32)

    def load(position, index):
        image = decode_face(tf.io.read_file(path_table[index]), image_size)
        for number, augmentation in enumerate(augmentations):
            image = augmentation(image, tf.stack([tf.cast(seed, tf.int64) * 1000 + number, position]))
        return image, label_table[index]

    indices = tf.data.Dataset.range(len(paths)).shuffle(len(paths), seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = indices.enumerate().map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
