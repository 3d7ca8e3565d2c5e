"""Verification pairs drawn from labelled images: half same-identity, half different-identity.

Used by `make_bin` (pairs from an identity folder) and by the synthetic dataset's held-out `.bin`.
"""
import numpy as np

from data.errors import DataError


def draw_pairs(rng, labels, pairs, data):
    """`pairs` (even) distinct (first, second, issame) image indices into `labels` (int (N,), grouped by class).

    Half the pairs are two different images of one class, half are images of two classes;
    each half is drawn uniformly without repetition (with `rng`, a numpy Generator) from all
    such pairs, never an image with itself. Each pair's order is random and the pairs are
    shuffled. `data` names the images in the error raised when there are too few pairs.
    """
    half = pairs // 2
    boundaries = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], boundaries]).astype(np.int64)
    sizes = np.diff(np.concatenate([starts, [len(labels)]])).astype(np.int64)
    same_per_class = sizes * (sizes - 1) // 2
    image_ends = np.repeat(starts + sizes, sizes)
    different_per_image = len(labels) - image_ends
    total_same, total_different = int(same_per_class.sum()), int(different_per_image.sum())
    if half > min(total_same, total_different):
        raise DataError(
            f"{data!r} gives only {total_same} distinct same-identity and {total_different} different-identity "
            f"pairs, but --pairs={pairs} needs {half} of each; lower --pairs or add images "
            "(same-identity pairs need identities with at least 2 images, different ones at least 2 identities)."
        )
    chosen = _same_pairs(rng.choice(total_same, half, replace=False), same_per_class, starts)
    chosen += _different_pairs(rng.choice(total_different, half, replace=False), different_per_image, image_ends)
    swap = rng.uniform(size=len(chosen)) < 0.5
    chosen = [(second, first, issame) if flip else (first, second, issame)
              for (first, second, issame), flip in zip(chosen, swap)]
    return [chosen[index] for index in rng.permutation(len(chosen))]


def _same_pairs(numbers, same_per_class, starts):
    """Same-identity pairs `numbers` (int64 (K,)) → [(i, j, True)] image indices, i < j.

    Pairs are numbered by class, then within a class of n images in colex order: pair
    (i, j), 0 <= i < j < n, is number j (j - 1) / 2 + i.
    """
    cumulative = np.cumsum(same_per_class)
    classes = np.searchsorted(cumulative, numbers, side="right")
    rank = numbers - (cumulative[classes] - same_per_class[classes])
    second = ((1 + np.sqrt(1 + 8 * rank.astype(np.float64))) // 2).astype(np.int64)
    second -= second * (second - 1) // 2 > rank
    second += (second + 1) * second // 2 <= rank
    first = rank - second * (second - 1) // 2
    return [(int(starts[klass] + i), int(starts[klass] + j), True) for klass, i, j in zip(classes, first, second)]


def _different_pairs(numbers, different_per_image, image_ends):
    """Different-identity pairs `numbers` (int64 (K,)) → [(a, b, False)], b past the end of a's identity.

    Pairs are numbered by a, then b: image a has `different_per_image[a]` = N - end(a) partners.
    """
    cumulative = np.cumsum(different_per_image)
    first = np.searchsorted(cumulative, numbers, side="right")
    rank = numbers - (cumulative[first] - different_per_image[first])
    return [(int(a), int(image_ends[a] + offset), False) for a, offset in zip(first, rank)]
