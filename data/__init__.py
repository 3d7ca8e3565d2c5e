"""Data: identity folders, the tf.data pipeline, augmentations, `.bin` files and the synthetic default."""
from data import augment, sources  # noqa: F401  (registers the augmentations and datasets)
