"""The tf.data training pipeline: shuffled file indices → parallel decode → augment → batch → prefetch."""
import tensorflow as tf

from registry import AUGMENTATIONS


def decode_face(encoded, image_size):
    """Encoded JPEG/PNG bytes → float32 (image_size, image_size, 3) in 0..255 (grey/RGBA become RGB)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size))
    return tf.ensure_shape(image, (image_size, image_size, 3))


def train_dataset(paths, labels, batch_size, image_size=112, augment=("flip",), seed=0, deterministic=False,
                  start_step=0):
    """An endless dataset of (images float32 (B, S, S, 3) in 0..255, labels int32 (B,)).

    Sample number p of the stream is file `index_shuffle(p mod N, seed=(seed, p div N))`: a
    fresh permutation of all N files per pass, computed statelessly, so no shuffle buffer
    holds anything and the stream can start at any step (`start_step`, for resuming) with
    exactly the batches an uninterrupted run would see. Augmentations are seeded by p too.
    `deterministic=True` also keeps the parallel map in order (bit-identical runs).
    """
    count = len(paths)
    if count < batch_size:
        raise ValueError(
            f"the dataset has {count} images, fewer than one batch of {batch_size}; "
            "use a smaller --batch_size or more data."
        )
    augmentations = [AUGMENTATIONS.get(name) for name in augment]
    path_table = tf.constant(list(paths))
    label_table = tf.constant(labels, dtype=tf.int32)

    def load(position):
        permutation_seed = tf.stack([tf.constant(seed, tf.int64), position // count])
        index = tf.random.experimental.index_shuffle(position % count, permutation_seed, count - 1)
        image = decode_face(tf.io.read_file(path_table[index]), image_size)
        for number, augmentation in enumerate(augmentations):
            image = augmentation(image, tf.stack([tf.constant(seed * 1000 + number, tf.int64), position]))
        return image, label_table[index]

    positions = tf.data.Dataset.range(int(start_step) * batch_size, 2**62)
    dataset = positions.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
