"""Face-verification accuracy on image pairs, following the insightface protocol.

Pure NumPy + scikit-learn (no TensorFlow), so the numbers can be checked by hand and reused
by any evaluation code. The input is one embedding row per image, already summed with the
embedding of its horizontally flipped image; rows (0, 1), (2, 3), ... form the pairs.

    metrics = verification_metrics(embeddings, issame)   # embeddings (2P, d), issame (P,)
    metrics["acc"], metrics["acc_std"]                      # 10-fold accuracy, the number to report
    metrics["best_acc"], metrics["best_threshold"]          # optimistic: tuned on the test set itself
    metrics["roc_auc"], metrics["tar_at_far_1e-3"]          # ROC of the cosine scores over all pairs

Protocol (insightface ``verification.calculate_roc``):

1. ``e_i = x_i / max(||x_i||, eps)`` (a zero row stays zero instead of becoming NaN).
2. ``dist_p = ||e_{2p} - e_{2p+1}||^2`` in [0, 4]; for unit rows ``dist = 2 - 2 cos``.
3. Pair ``p`` is predicted "same" when ``dist_p < t``; thresholds ``t`` are ``arange(0, 4, 0.01)``.
4. ``KFold(n_folds, shuffle=False)`` over pairs: for each fold pick the threshold with the best
   accuracy on the other folds (ties: the smallest threshold) and score the held-out fold.
   Report the mean and standard deviation of the fold accuracies and the mean chosen threshold.

Beside it, the ROC of the pairs' cosine similarities ``cos_p = e_{2p} · e_{2p+1}`` over all pairs
(``sklearn.metrics.roc_curve``): its area and the TAR at FAR 1e-3 and 1e-2, read off as insightface's
IJB evaluation does (`evaluation.roc.tar_at_far`). With P pairs, about P/2 of them different, a FAR
below 2/P rests on a single false accept.
"""
from typing import NamedTuple

import numpy as np
from sklearn.model_selection import KFold

from evaluation.roc import roc_summary

DISTANCE_THRESHOLDS = np.arange(0, 4, 0.01)
"""Squared-L2 distance thresholds tried by the protocol: 0.00, 0.01, ..., 3.99 (400 values)."""

BIN_FARS = (1e-3, 1e-2)
"""False accept rates at which the `.bin` metrics report the TAR (as `tar_at_far_<far>`)."""

NORM_EPSILON = 1e-12
"""Floor on a row's L2 norm before dividing, so an all-zero row normalises to zero, not NaN."""


class KFoldAccuracy(NamedTuple):
    """Per-fold results of :func:`kfold_accuracy`.

    accuracies: (K,) accuracy of each held-out fold, in [0, 1].
    thresholds: (K,) squared-L2 distance threshold chosen on the other folds.
    """

    accuracies: np.ndarray
    thresholds: np.ndarray


def l2_normalize_rows(embeddings):
    """Rows scaled to unit L2 norm: ``e_i = x_i / max(||x_i||_2, NORM_EPSILON)``.

    embeddings: (N, d) float array. Returns (N, d) float64; an all-zero row stays all zero.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, NORM_EPSILON)


def pair_distances(embeddings):
    """Squared L2 distance between the two members of each pair, after L2 normalisation.

    ``dist_p = sum_k (e_{2p,k} - e_{2p+1,k})^2`` with ``e = l2_normalize_rows(embeddings)``,
    so ``dist_p = 2 - 2 cos(x_{2p}, x_{2p+1})`` lies in [0, 4] (a zero row is at distance 1
    from any unit row and 0 from another zero row).

    embeddings: (2P, d) float array. Returns (P,) float64.
    """
    normalized = l2_normalize_rows(embeddings)
    difference = normalized[0::2] - normalized[1::2]
    return np.sum(np.square(difference), axis=1)


def pair_cosines(embeddings):
    """Cosine similarity of the two members of each pair: ``e_{2p} · e_{2p+1}`` with ``e = l2_normalize_rows``.

    embeddings: (2P, d) float array. Returns (P,) float64 in [-1, 1] (0 for a pair with a zero row).
    """
    normalized = l2_normalize_rows(embeddings)
    return np.einsum("ij,ij->i", normalized[0::2], normalized[1::2])


def far_key(far):
    """The metric name of the TAR at `far`: 1e-3 → 'tar_at_far_1e-3'."""
    mantissa, exponent = f"{far:.0e}".split("e")
    return f"tar_at_far_{mantissa}e{int(exponent)}"


def roc_metrics(embeddings, issame, fars=BIN_FARS):
    """({'roc_auc', 'tar_at_far_<far>' ...}, (fpr, tpr)) of the pairs' cosine scores; NaNs and None with one class only."""
    issame = np.asarray(issame, dtype=bool)
    if issame.all() or not issame.any():
        return {"roc_auc": float("nan"), **{far_key(far): float("nan") for far in fars}}, None
    summary = roc_summary(issame, pair_cosines(embeddings), fars)
    return {"roc_auc": summary["roc_auc"], **{far_key(far): summary["tar_at_far"][far] for far in fars}}, summary["roc"]


def correct_counts_at_thresholds(dist, issame, thresholds):
    """Number of correctly classified pairs at each threshold, ``predicted same = dist < t``.

    ``count(t) = #{p : issame_p and dist_p < t} + #{p : not issame_p and dist_p >= t}``,
    computed by binary search in the sorted distances of each class (no (T, P) matrix).

    dist: (P,) distances; issame: (P,) bool; thresholds: (T,). Returns (T,) int64 counts.
    """
    dist = np.asarray(dist, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    same_sorted = np.sort(dist[issame])
    different_sorted = np.sort(dist[~issame])
    true_accepts = np.searchsorted(same_sorted, thresholds, side="left")
    true_rejects = different_sorted.size - np.searchsorted(different_sorted, thresholds, side="left")
    return (true_accepts + true_rejects).astype(np.int64)


def accuracy_at_thresholds(dist, issame, thresholds):
    """Verification accuracy at each threshold: ``acc(t) = count(t) / P``.

    ``count(t)`` is :func:`correct_counts_at_thresholds` (predicted same = ``dist < t``).

    dist: (P,) distances, P >= 1; issame: (P,) bool; thresholds: (T,). Returns (T,) in [0, 1].
    """
    dist = np.asarray(dist, dtype=np.float64)
    return correct_counts_at_thresholds(dist, issame, thresholds) / dist.size


def kfold_accuracy(dist, issame, thresholds=DISTANCE_THRESHOLDS, n_folds=10):
    """Cross-validated accuracy: threshold tuned on K-1 folds, scored on the held-out fold.

    For fold k with held-out pairs ``S_k`` (``KFold(n_folds, shuffle=False)``, i.e. contiguous
    blocks in pair order): ``t_k = thresholds[argmax_t acc(dist[~S_k], t)]`` (first argmax, so
    ties go to the smallest threshold) and ``acc_k = acc(dist[S_k], t_k)``.

    dist: (P,) distances; issame: (P,) bool; thresholds: (T,) increasing; n_folds <= P.
    Returns :class:`KFoldAccuracy` with (K,) accuracies and (K,) chosen thresholds.
    """
    dist = np.asarray(dist, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    accuracies = np.zeros(n_folds)
    chosen_thresholds = np.zeros(n_folds)
    folds = KFold(n_splits=n_folds, shuffle=False).split(np.arange(dist.size))
    for fold, (train_index, test_index) in enumerate(folds):
        train_accuracy = accuracy_at_thresholds(dist[train_index], issame[train_index], thresholds)
        chosen_thresholds[fold] = thresholds[np.argmax(train_accuracy)]
        accuracies[fold] = accuracy_at_thresholds(
            dist[test_index], issame[test_index], chosen_thresholds[fold:fold + 1])[0]
    return KFoldAccuracy(accuracies=accuracies, thresholds=chosen_thresholds)


def best_accuracy(dist, issame, thresholds=DISTANCE_THRESHOLDS):
    """Best accuracy over the thresholds on the whole set (optimistic: tuned on the test pairs).

    ``t* = thresholds[argmax_t acc(dist, t)]`` (first argmax); returns ``(acc(t*), 1 - t*/2)``,
    the threshold as a cosine similarity in [-1, 1] (predicted same = ``cos > 1 - t*/2``).
    """
    accuracy = accuracy_at_thresholds(dist, issame, thresholds)
    best_index = int(np.argmax(accuracy))
    return float(accuracy[best_index]), float(1.0 - np.asarray(thresholds)[best_index] / 2.0)


def _validated_inputs(embeddings, issame, n_folds):
    """Arrays checked for the shapes the protocol needs; raises ValueError naming the values."""
    embeddings = np.asarray(embeddings)
    issame = np.asarray(issame)
    if embeddings.ndim != 2:
        raise ValueError(
            f"embeddings must be a 2-D array (2P, d) with one row per image, got shape "
            f"{embeddings.shape}.")
    rows = embeddings.shape[0]
    if rows % 2 != 0:
        raise ValueError(
            f"embeddings must have an even number of rows (pairs are rows (0, 1), (2, 3), ...), "
            f"got {rows} rows.")
    if not np.all(np.isfinite(embeddings)):
        bad = int(np.size(embeddings) - np.count_nonzero(np.isfinite(embeddings)))
        raise ValueError(
            f"embeddings contain {bad} non-finite values (NaN or inf); the model has diverged or "
            f"the input is broken, so verification accuracy is undefined.")
    pairs = rows // 2
    if issame.ndim != 1 or issame.shape[0] != pairs:
        raise ValueError(
            f"issame must have one entry per pair: {rows} embedding rows make {pairs} pairs, "
            f"but issame has shape {issame.shape}.")
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}.")
    if pairs < n_folds:
        raise ValueError(
            f"need at least n_folds={n_folds} pairs for {n_folds}-fold cross-validation, "
            f"got {pairs} pairs ({rows} embedding rows).")
    return embeddings.astype(np.float64), issame.astype(bool)


def verification_metrics(embeddings, issame, n_folds=10):
    """Insightface verification metrics for flip-summed, not yet normalised, embeddings.

    embeddings: (2P, d) float array; rows 2p and 2p+1 are the two images of pair p.
    issame: (P,) bool (or 0/1), True where the pair shows the same identity.
    n_folds: number of cross-validation folds (insightface uses 10); needs P >= n_folds.

    Returns a dict of Python numbers:
      acc:            mean held-out fold accuracy, in [0, 1] (the protocol's reported number).
      acc_std:        ``np.std`` (population) of the fold accuracies.
      threshold:      mean chosen squared-L2 distance threshold, in [0, 4).
      best_acc:       best accuracy over the thresholds on the whole set; optimistic, since the
                      threshold is tuned on the test pairs (the spec's number). It is >= acc when
                      n_folds divides P (equal folds); with unequal folds the unweighted fold mean
                      can exceed it by a little.
      best_threshold: that threshold as a cosine similarity ``1 - t/2``, in [-1, 1]; predicted
                      same = ``cos > best_threshold``.
      xnorm:          mean L2 norm of the rows as given (flip-summed, so about twice the norm
                      of a single image's embedding).
      roc_auc:        area under the ROC of the cosine scores over all pairs (NaN if one class only).
      tar_at_far_1e-3, tar_at_far_1e-2: TAR at FAR 1e-3 and 1e-2 of that ROC (insightface's tie rule).
      pairs:          P.

    Raises ValueError for a non-2-D or odd-row ``embeddings``, non-finite values, an
    ``issame`` whose length is not P, or fewer than ``n_folds`` pairs.
    """
    embeddings, issame = _validated_inputs(embeddings, issame, n_folds)
    dist = pair_distances(embeddings)
    folds = kfold_accuracy(dist, issame, DISTANCE_THRESHOLDS, n_folds)
    best_acc, best_threshold = best_accuracy(dist, issame, DISTANCE_THRESHOLDS)
    roc_numbers, _ = roc_metrics(embeddings, issame)
    return {
        "acc": float(np.mean(folds.accuracies)),
        "acc_std": float(np.std(folds.accuracies)),
        "threshold": float(np.mean(folds.thresholds)),
        "best_acc": best_acc,
        "best_threshold": best_threshold,
        "xnorm": float(np.mean(np.linalg.norm(embeddings, axis=1))),
        **roc_numbers,
        "pairs": int(issame.size),
    }
