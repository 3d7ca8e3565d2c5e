"""Embedding `.bin` verification pairs and scoring them: the steps the verification callback and `eval` share."""
import os
import sys

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from evaluation.verification_metrics import roc_metrics, verification_metrics
from storage.atomic import atomic_write


def flip_pair_function(embedder):
    """A compiled function: images (B, H, W, 3) → (embedder(images), embedder(horizontal flips)), each (B, d).

    Images and flips go through the model as one batch of 2B, in inference mode. It is
    called directly, not through `predict`, so evaluation stays local to this process even
    under a multi-worker strategy (only the chief evaluates).
    """

    @tf.function(reduce_retracing=True)
    def embed(batch):
        batch = tf.cast(batch, tf.float32)
        embeddings = embedder(tf.concat([batch, tf.reverse(batch, axis=[2])], axis=0), training=False)
        return tf.split(embeddings, 2, axis=0)

    return embed


def embed_batches(embed, batches, total=None, description=None):
    """Run `embed` (a batch → a tuple of (B, d) tensors) over the image batches of `batches` (any iterable).

    Returns the tuple of outputs, each concatenated over batches as numpy (N, d); a tqdm bar on stderr
    shows progress when `description` is given and stderr is a terminal (a log gets no bar).
    """
    outputs = []
    for batch in tqdm(batches, desc=description, total=total, leave=False, unit="batch",
                      disable=None if description else True, file=sys.stderr):
        outputs.append([output.numpy() for output in embed(batch)])
    return tuple(np.concatenate(column) for column in zip(*outputs))


def embed_bin(embed, images, batch_size, description=None):
    """(flip-summed embeddings (N, d), raw embeddings (N, d)) of uint8 images (N, H, W, 3).

    `embed` is a `flip_pair_function`; a tqdm bar shows progress when `description` is given.
    """
    batches = tf.data.Dataset.from_tensor_slices(images).batch(batch_size).prefetch(2)
    plain, flipped = embed_batches(embed, batches, -(-len(images) // batch_size), description)
    return plain + flipped, plain


def evaluate_bins(embed, bins, batch_size, progress=True):
    """{bin name: verification_metrics dict plus 'roc', or None when embeddings are non-finite}.

    `bins`: {name: (images uint8 (2P, H, W, 3), issame bool (P,))}. `xnorm` is the mean norm
    of the un-flipped embeddings, as insightface reports it; 'roc' is (fpr, tpr) of the cosine
    scores over all pairs (None when the pairs are all same or all different).
    """
    results = {}
    for name, (images, issame) in bins.items():
        summed, plain = embed_bin(embed, images, batch_size, f"evaluating {name}" if progress else None)
        if not np.all(np.isfinite(summed)):
            print(f"warning: non-finite embeddings on {name}; skipping its evaluation.")
            results[name] = None
            continue
        results[name] = {**verification_metrics(summed, issame), "xnorm": float(np.linalg.norm(plain, axis=1).mean()),
                         "roc": roc_metrics(summed, issame)[1]}
    return results


def save_roc_curves(path, curves, epoch):
    """Write {bin name: (fpr, tpr)} of `epoch` to the `.npz` file `path` atomically (arrays `<bin>/fpr`, `<bin>/tpr`)."""
    arrays = {f"{name}/{axis}": np.asarray(values) for name, (fpr, tpr) in curves.items()
              for axis, values in (("fpr", fpr), ("tpr", tpr))}
    atomic_write(path, lambda temp: np.savez(temp, epoch=np.int64(epoch), **arrays), suffix=".npz")


def load_roc_curves(path):
    """({bin name: (fpr, tpr)}, epoch) from a file written by `save_roc_curves` (no pickle)."""
    with np.load(path, allow_pickle=False) as stored:
        names = sorted({key.rsplit("/", 1)[0] for key in stored.files if key != "epoch"})
        return {name: (stored[f"{name}/fpr"], stored[f"{name}/tpr"]) for name in names}, int(stored["epoch"])


def bin_name(path):
    """The name a `.bin` file's metrics are logged under: its file name without `.bin`."""
    return os.path.splitext(os.path.basename(path))[0]
