"""ROC curves of verification scores and TAR at a given FAR, with insightface's choice of ROC point.

Shared by the IJB-B/C protocol (`evaluation.ijb`) and the `.bin` verification metrics.

Source: deepinsight/insightface `recognition/arcface_torch/eval_ijbc.py` (Step 5) and
`recognition/_evaluation_/ijb/ijb_11.py`::

    fpr, tpr, _ = roc_curve(label, scores)
    fpr = np.flipud(fpr); tpr = np.flipud(tpr)   # select largest tpr at same fpr
    _, min_index = min(list(zip(abs(fpr - far), range(len(fpr)))))
    tar = tpr[min_index]

i.e. the ROC point whose FPR is closest to the FAR; among equally close points the first in the
flipped (FPR-descending) order wins: at equal FPR the largest TPR, and when two different FPRs are
equally far from the FAR, the larger FPR.
"""
import numpy as np
from sklearn.metrics import auc, roc_curve

IJB_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
"""The false accept rates insightface's IJB-B/C table reports."""


def roc(labels, scores):
    """(fpr, tpr) of `sklearn.metrics.roc_curve(labels, scores)` (its defaults, as insightface calls it).

    labels: (P,) 0/1 or bool, 1 = same identity; scores: (P,) similarity, higher = more alike.
    Returns two (K,) float64 arrays, FPR increasing. Raises ValueError unless both labels occur.
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must have one entry per pair.")
    if np.unique(labels).size != 2:
        raise ValueError(f"an ROC needs both same (1) and different (0) pairs; labels hold only {np.unique(labels)}.")
    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr


def tar_at_far(fpr, tpr, far):
    """TPR at the ROC point whose FPR is closest to `far`, with insightface's tie rule (module docstring)."""
    flipped_fpr, flipped_tpr = np.flipud(fpr), np.flipud(tpr)
    return float(flipped_tpr[int(np.argmin(np.abs(flipped_fpr - far)))])


def roc_summary(labels, scores, fars):
    """{'roc_auc': area under the ROC, 'tar_at_far': {far: TAR}, 'roc': (fpr, tpr)} of the pair scores."""
    fpr, tpr = roc(labels, scores)
    return {"roc_auc": float(auc(fpr, tpr)), "tar_at_far": {far: tar_at_far(fpr, tpr, far) for far in fars},
            "roc": (fpr, tpr)}
