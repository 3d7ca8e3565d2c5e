"""`--head_init=class_means`: the classifier starts from the training identities' mean embeddings.

Before the first step each class vector is set to the normalised mean of the unit-normalised
embeddings of that identity's training images under the starting embedding model (inference
mode, no flip, no augmentation): weight imprinting (Qi, Brown & Lowe, "Low-Shot Learning with
Imprinted Weights", CVPR 2018, eq. 2: w = normalise(mean_i normalise(e_i))). A cosine head
(logits x·w/‖w‖) then starts where a pretrained embedding already separates the identities,
so the first steps' gradients do not come from a random classifier and do not push a
pretrained backbone towards random directions.

Heads: a (d, C·k) `kernel` whose class j holds columns j·k … j·k + k − 1 (`norm_dense`: k = 1;
`subcenter`: its `k`), and `partial_fc`, whose logical (d, C) matrix is set shard by shard.
With k > 1 identical sub-centres would stay identical (the max over ties splits their
gradient equally), so sub-centre i of class j is the imprint of the class's images at
positions p ≡ i (mod k) in its image order, or of all its images when that subset is empty.
Classes with no decodable image keep their random vectors.
"""
import time

import numpy as np
import tensorflow as tf

from data.pipeline import images_in_order
from recipes.recipe import RecipeError


def unit_rows(matrix):
    """`matrix` (N, d) with each row divided by its L2 norm (rows of zeros stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def class_mean_vectors(embeddings, labels, num_classes, k=1):
    """(vectors (d, C·k) float32, present bool (C,)) from `embeddings` (N, d) of images with class ids `labels` (N,).

    Column j·k + i = normalise(mean of normalise(e_p) over class j's images whose position
    among class j's images (in the given order) is ≡ i mod k); all of class j's images where
    that subset is empty. Columns of classes without images (present False) are zero.
    """
    embeddings, labels = unit_rows(np.asarray(embeddings, np.float64)), np.asarray(labels, np.int64)
    vectors = np.zeros((embeddings.shape[1], num_classes * k), np.float64)
    present = np.zeros(num_classes, bool)
    for class_id in np.unique(labels):
        members = embeddings[labels == class_id]
        present[class_id] = True
        for sub in range(k):
            subset = members[sub::k] if len(members) > sub else members
            vectors[:, class_id * k + sub] = subset.mean(axis=0)
    return unit_rows(vectors.T).T.astype(np.float32), present


def embed_images(embedder, paths, image_size, batch_size):
    """(embeddings (M, d) float32, image indices (M,)) of the images of `paths` that decode, in inference mode."""
    embed = tf.function(lambda images: embedder(images, training=False), reduce_retracing=True)
    embeddings, indices = [], []
    for images, index in images_in_order(paths, image_size, batch_size):
        embeddings.append(np.asarray(embed(images), np.float32))
        indices.append(index.numpy())
    return np.concatenate(embeddings), np.concatenate(indices)


def class_layout(head, num_classes):
    """Sub-centres per class k of `head`, or RecipeError for a head whose class vectors this cannot set."""
    if getattr(head, "class_sharded", False):
        return 1
    kernel = getattr(head, "kernel", None)
    k = int(getattr(head, "k", 1))
    if kernel is None or len(kernel.shape) != 2 or int(kernel.shape[1]) != num_classes * k:
        raise RecipeError(f"--head_init=class_means: head {head.name!r} ({type(head).__name__}) has no (d, C·k) "
                          "`kernel` of class vectors (norm_dense, subcenter and partial_fc do); use --head_init=random.")
    return k


def set_class_vectors(head, vectors, present):
    """Write the columns of `vectors` (d, C·k) of the classes in `present` (C,) into `head`'s kernel
    (`partial_fc`: into each replica's shard)."""
    sharded = getattr(head, "class_sharded", False)
    current = head.logical(head.kernel) if sharded else np.asarray(head.kernel.numpy())
    columns = np.repeat(present, vectors.shape[1] // len(present))
    current[:, columns] = vectors[:, columns]
    if sharded:
        head.assign_logical(head.kernel, current)
    else:
        head.kernel.assign(current)


def initialize_from_class_means(model, folder, image_size, batch_size):
    """Set the class vectors of `model.head` from the mean embeddings of `folder`'s images (an `IdentityFolder`)
    under `model.embedder`; prints what it did. Every worker of a multi-worker run computes the same."""
    k = class_layout(model.head, folder.num_classes)
    start = time.time()
    embeddings, indices = embed_images(model.embedder, folder.paths, image_size, batch_size)
    vectors, present = class_mean_vectors(embeddings, np.asarray(folder.labels)[indices], folder.num_classes, k)
    set_class_vectors(model.head, vectors, present)
    print(f"head_init: class vectors of {int(present.sum())} of {folder.num_classes} identities set to the mean "
          f"embeddings of {len(indices)} images ({time.time() - start:.1f} s)")
