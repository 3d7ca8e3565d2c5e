"""Data: identity folders, the tf.data pipeline, augmentations, `.bin` files and the synthetic default.

The built-in datasets and augmentations are declared in `registry/manifest.py` and imported on use.
"""
