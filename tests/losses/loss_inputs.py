"""Inputs for the loss tests: chosen cosines and norms as (embeddings, NormDense logits), and NumPy helpers."""
import numpy as np

EDGE_COSINES = (1.0, -1.0, 1.0 - 1e-7, -(1.0 - 1e-7), 1.0 - 5e-4, -(1.0 - 5e-4), 0.0)


def loss_inputs(seed, batch=12, classes=7, dim=8, norms=None, edge_targets=True):
    """(labels (B,), embeddings (B, d) float32, logits (B, C) float32, cosine (B, C) float32, norms (B,) float32).

    Cosines are uniform in [−1, 1]; with `edge_targets` the first rows' target cosines are
    EDGE_COSINES (θ at or near 0 and π). Norms default to a spread from 1e-4 to 300, so clip
    ranges (AdaFace [0.001, 100], MagFace [10, 110]) are crossed on both sides.
    logits = cosine · ‖x‖ in float32, so logits / ‖x‖ (what a loss layer sees) is `cosine` only up
    to float32 rounding, which near cos = ±1 moves acos by up to ~5e-4 rad: compare layers at
    edge cosines only where the loss clips them away (or use `seen_cosine`), functions of the
    cosine directly on `cosine`.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=batch)
    cosine = rng.uniform(-1.0, 1.0, size=(batch, classes)).astype(np.float32)
    if edge_targets:
        count = min(batch, len(EDGE_COSINES))
        cosine[np.arange(count), labels[:count]] = EDGE_COSINES[:count]
    if norms is None:
        norms = np.exp(rng.uniform(np.log(1e-4), np.log(300.0), size=batch))
    directions = rng.normal(size=(batch, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    embeddings = (directions * np.asarray(norms)[:, None]).astype(np.float32)
    norms = np.linalg.norm(embeddings.astype(np.float64), axis=1).astype(np.float32)
    logits = (cosine.astype(np.float64) * norms[:, None]).astype(np.float32)
    return labels, embeddings, logits, cosine, norms


def seen_cosine(embeddings, logits):
    """logits / ‖x‖ in float64: the cosine a loss layer computes, without its float32 rounding."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    return np.asarray(logits, dtype=np.float64) / np.linalg.norm(embeddings, axis=1, keepdims=True)


def cross_entropy(logits, labels):
    """−log softmax(logits)[y] per row, in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_softmax[np.arange(len(labels)), labels]


def one_hot(labels, classes):
    encoded = np.zeros((len(labels), classes))
    encoded[np.arange(len(labels)), labels] = 1.0
    return encoded
