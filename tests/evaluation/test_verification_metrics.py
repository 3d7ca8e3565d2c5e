"""Tests of `evaluation.verification_metrics` against an independent insightface-style reference."""
import ast
import inspect

import numpy as np
import pytest
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize

from evaluation import roc as roc_module
from evaluation import verification_metrics as verification_module
from evaluation.verification_metrics import (
    DISTANCE_THRESHOLDS,
    accuracy_at_thresholds,
    best_accuracy,
    correct_counts_at_thresholds,
    kfold_accuracy,
    pair_distances,
    roc_metrics,
    verification_metrics,
)


# --- Independent reference: a plain transcription of insightface's verification.py ------------

def reference_calculate_accuracy(threshold, dist, actual_issame):
    """insightface `calculate_accuracy`: fraction of pairs classified right at one threshold."""
    predict_issame = np.less(dist, threshold)
    true_positives = np.sum(np.logical_and(predict_issame, actual_issame))
    true_negatives = np.sum(np.logical_and(np.logical_not(predict_issame), np.logical_not(actual_issame)))
    return float(true_positives + true_negatives) / dist.size


def reference_calculate_roc(thresholds, embeddings1, embeddings2, actual_issame, nrof_folds=10):
    """insightface `calculate_roc` (accuracy part): explicit loops over folds and thresholds."""
    nrof_pairs = min(len(actual_issame), embeddings1.shape[0])
    k_fold = KFold(n_splits=nrof_folds, shuffle=False)
    accuracy = np.zeros(nrof_folds)
    best_thresholds = np.zeros(nrof_folds)
    diff = np.subtract(embeddings1, embeddings2)
    dist = np.sum(np.square(diff), 1)
    indices = np.arange(nrof_pairs)
    for fold_idx, (train_set, test_set) in enumerate(k_fold.split(indices)):
        acc_train = np.zeros(len(thresholds))
        for threshold_idx, threshold in enumerate(thresholds):
            acc_train[threshold_idx] = reference_calculate_accuracy(
                threshold, dist[train_set], actual_issame[train_set])
        best_threshold_index = np.argmax(acc_train)
        best_thresholds[fold_idx] = thresholds[best_threshold_index]
        accuracy[fold_idx] = reference_calculate_accuracy(
            thresholds[best_threshold_index], dist[test_set], actual_issame[test_set])
    return accuracy, best_thresholds, dist


def reference_evaluate(embeddings, actual_issame, nrof_folds=10):
    """insightface `evaluate` on flip-summed rows: normalise, split pairs, k-fold; plus the spec's best."""
    embeddings = normalize(np.asarray(embeddings, dtype=np.float64))
    actual_issame = np.asarray(actual_issame, dtype=bool)
    thresholds = np.arange(0, 4, 0.01)
    accuracy, best_thresholds, dist = reference_calculate_roc(
        thresholds, embeddings[0::2], embeddings[1::2], actual_issame, nrof_folds)
    best_acc, best_threshold = -1.0, None
    for threshold in thresholds:
        acc = reference_calculate_accuracy(threshold, dist, actual_issame)
        if acc > best_acc:
            best_acc, best_threshold = acc, threshold
    return {
        "acc": np.mean(accuracy),
        "acc_std": np.std(accuracy),
        "threshold": np.mean(best_thresholds),
        "best_acc": best_acc,
        "best_threshold": 1.0 - best_threshold / 2.0,
    }


def assert_matches_reference(embeddings, issame, n_folds=10):
    metrics = verification_metrics(embeddings, issame, n_folds=n_folds)
    expected = reference_evaluate(embeddings, issame, n_folds)
    for key in ("acc", "acc_std", "threshold", "best_acc", "best_threshold"):
        assert metrics[key] == expected[key], (key, metrics[key], expected[key])
    return metrics


# --- Data makers -------------------------------------------------------------------------------

def random_pairs(seed, pairs, dim):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(2 * pairs, dim)), rng.random(pairs) < 0.5


def structured_pairs(seed, pairs, dim, noise=0.3, label_noise=0.1):
    """Same pairs: one identity centre plus noise; different pairs: two centres; some labels flipped."""
    rng = np.random.default_rng(seed)
    issame = rng.random(pairs) < 0.5
    first_centres = rng.normal(size=(pairs, dim))
    other_centres = rng.normal(size=(pairs, dim))
    second_centres = np.where(issame[:, None], first_centres, other_centres)
    embeddings = np.empty((2 * pairs, dim))
    embeddings[0::2] = first_centres + noise * rng.normal(size=(pairs, dim))
    embeddings[1::2] = second_centres + noise * rng.normal(size=(pairs, dim))
    embeddings *= rng.uniform(0.5, 20.0, size=(2 * pairs, 1))
    flipped = rng.random(pairs) < label_noise
    return embeddings, issame ^ flipped


def quantized_angle_pairs(seed, pairs, angles):
    """2-D pairs whose angle is one of a few values, so many distances are bitwise equal (ties)."""
    rng = np.random.default_rng(seed)
    angle = rng.choice(angles, size=pairs)
    embeddings = np.zeros((2 * pairs, 2))
    embeddings[0::2, 0] = 1.0
    embeddings[1::2, 0] = np.cos(angle)
    embeddings[1::2, 1] = np.sin(angle)
    issame = rng.random(pairs) < np.where(angle < np.pi / 2, 0.7, 0.3)
    return embeddings, issame


# --- Agreement with the reference ------------------------------------------------------------

@pytest.mark.parametrize("seed, pairs, dim", [
    (0, 60, 8), (1, 97, 16), (2, 150, 32), (3, 333, 64), (4, 600, 12), (5, 61, 8), (6, 480, 24),
])
def test_random_embeddings_match_reference(seed, pairs, dim):
    assert_matches_reference(*random_pairs(seed, pairs, dim))


@pytest.mark.parametrize("seed, pairs, dim, noise, label_noise", [
    (10, 60, 8, 0.3, 0.0), (11, 200, 16, 0.5, 0.1), (12, 600, 64, 0.8, 0.2), (13, 123, 32, 1.0, 0.05),
])
def test_structured_embeddings_match_reference(seed, pairs, dim, noise, label_noise):
    embeddings, issame = structured_pairs(seed, pairs, dim, noise, label_noise)
    metrics = assert_matches_reference(embeddings, issame)
    if label_noise == 0.0:
        assert metrics["acc"] > 0.9
    else:
        assert metrics["acc"] > 0.5


@pytest.mark.parametrize("seed, pairs", [(20, 60), (21, 200), (22, 77)])
def test_tied_distances_match_reference(seed, pairs):
    embeddings, issame = quantized_angle_pairs(seed, pairs, np.array([0.3, 0.9, 1.4, 2.0, 2.8]))
    assert_matches_reference(embeddings, issame)


@pytest.mark.parametrize("n_folds", [2, 5, 7])
def test_other_fold_counts_match_reference(n_folds):
    assert_matches_reference(*structured_pairs(30 + n_folds, 140, 16, 0.7, 0.1), n_folds=n_folds)


def test_zero_rows_match_reference_and_are_finite():
    embeddings, issame = structured_pairs(40, 100, 16)
    embeddings[[0, 1, 7, 50, 51, 120]] = 0.0
    metrics = assert_matches_reference(embeddings, issame)
    assert all(np.isfinite(value) for value in metrics.values())


def test_all_zero_embeddings_are_finite():
    metrics = verification_metrics(np.zeros((40, 8)), np.arange(20) % 2 == 0)
    assert all(np.isfinite(value) for value in metrics.values())
    assert metrics["xnorm"] == 0.0
    assert metrics["acc"] == pytest.approx(0.5)


# --- Closed forms ----------------------------------------------------------------------------

def test_perfectly_separable_gives_full_accuracy_at_smallest_tied_threshold():
    """Same pairs identical (dist 0), different pairs orthogonal (dist 2): every t in (0, 2] ties."""
    rng = np.random.default_rng(50)
    pairs = 100
    issame = rng.random(pairs) < 0.5
    embeddings = np.zeros((2 * pairs, 4))
    embeddings[0::2, 0] = rng.uniform(1, 5, size=pairs)
    embeddings[1::2, 0] = np.where(issame, 3.0, 0.0)
    embeddings[1::2, 1] = np.where(issame, 0.0, 2.0)
    metrics = verification_metrics(embeddings, issame)
    assert metrics["acc"] == 1.0
    assert metrics["acc_std"] == 0.0
    assert metrics["best_acc"] == 1.0
    assert metrics["threshold"] == pytest.approx(DISTANCE_THRESHOLDS[1], abs=1e-15)  # mean of ten 0.01s
    assert metrics["best_threshold"] == pytest.approx(1.0 - 0.01 / 2)


def test_identical_pairs_with_alternating_labels_give_half_accuracy():
    """All distances 0 and every fold half same: accuracy 0.5 at every threshold, so t = 0 wins."""
    embeddings = np.repeat(np.random.default_rng(51).normal(size=(200, 8)), 2, axis=0)
    issame = np.arange(200) % 2 == 0
    metrics = verification_metrics(embeddings, issame)
    assert metrics["acc"] == 0.5
    assert metrics["acc_std"] == 0.0
    assert metrics["threshold"] == 0.0
    assert metrics["best_acc"] == 0.5
    assert metrics["best_threshold"] == 1.0


def test_identical_pairs_with_random_half_labels_stay_near_chance():
    embeddings = np.repeat(np.random.default_rng(52).normal(size=(300, 8)), 2, axis=0)
    issame = np.random.default_rng(53).permutation(np.arange(300) % 2 == 0)
    metrics = verification_metrics(embeddings, issame)
    assert 0.35 <= metrics["acc"] <= 0.65
    assert metrics["best_acc"] == 0.5


def test_xnorm_is_mean_raw_row_norm():
    rng = np.random.default_rng(54)
    norms = rng.uniform(0.1, 30.0, size=40)
    directions = normalize(rng.normal(size=(40, 16)))
    metrics = verification_metrics(directions * norms[:, None], rng.random(20) < 0.5)
    assert metrics["xnorm"] == pytest.approx(norms.mean(), rel=1e-12)
    assert metrics["pairs"] == 20


@pytest.mark.parametrize("seed", range(8))
def test_best_acc_bounds_acc_when_folds_are_equal(seed):
    """sum_k f_k(t_k) <= max_t sum_k f_k(t) for equal folds; only rounding can break it."""
    rng = np.random.default_rng(seed)
    pairs = 10 * int(rng.integers(6, 61))
    metrics = verification_metrics(*random_pairs(100 + seed, pairs, int(rng.integers(8, 65))))
    assert metrics["best_acc"] >= metrics["acc"] - 1e-12
    assert -1.0 <= metrics["best_threshold"] <= 1.0
    assert 0.0 <= metrics["threshold"] < 4.0


def test_float32_input_equals_float64_of_same_values():
    embeddings, issame = structured_pairs(55, 120, 16)
    embeddings = embeddings.astype(np.float32)
    assert verification_metrics(embeddings, issame) == verification_metrics(embeddings.astype(np.float64), issame)


# --- The pure functions ------------------------------------------------------------------------

def test_pair_distances_are_two_minus_two_cosine():
    embeddings, _ = random_pairs(60, 50, 12)
    first, second = embeddings[0::2], embeddings[1::2]
    cosine = np.sum(first * second, 1) / np.linalg.norm(first, axis=1) / np.linalg.norm(second, axis=1)
    dist = pair_distances(embeddings)
    assert dist.shape == (50,)
    np.testing.assert_allclose(dist, 2 - 2 * cosine, atol=1e-12)
    assert np.all((dist >= 0) & (dist <= 4))


def test_accuracy_at_thresholds_equals_full_comparison_including_exact_hits():
    """Distances placed exactly on thresholds check the strict `dist < t` rule."""
    rng = np.random.default_rng(61)
    dist = np.concatenate([rng.uniform(0, 4, 300), rng.choice(DISTANCE_THRESHOLDS, 300)])
    issame = rng.random(600) < 0.5
    predicted_same = dist[None, :] < DISTANCE_THRESHOLDS[:, None]
    expected_counts = np.sum(predicted_same == issame[None, :], axis=1)
    np.testing.assert_array_equal(correct_counts_at_thresholds(dist, issame, DISTANCE_THRESHOLDS), expected_counts)
    np.testing.assert_array_equal(accuracy_at_thresholds(dist, issame, DISTANCE_THRESHOLDS), expected_counts / 600)


def test_kfold_accuracy_picks_first_argmax_and_scores_held_out_fold():
    """Fold 0 is tuned on fold 1 (best for t in (0.105, 3.0], first is 0.11) and scores 2/4;
    fold 1 is tuned on fold 0 (all same: best for t in (0.505, 4), first is 0.51) and scores 4/4."""
    dist = np.array([0.105, 0.505, 0.105, 0.505, 3.0, 3.0, 0.105, 3.0])
    issame = np.array([True, True, True, True, False, False, True, False])
    result = kfold_accuracy(dist, issame, DISTANCE_THRESHOLDS, n_folds=2)
    assert result.thresholds.tolist() == [DISTANCE_THRESHOLDS[11], DISTANCE_THRESHOLDS[51]]
    assert result.accuracies.tolist() == [0.5, 1.0]


def test_best_accuracy_reports_cosine_threshold():
    acc, cosine_threshold = best_accuracy(np.array([0.2, 0.4, 1.5, 2.5]), np.array([True, True, False, False]))
    assert acc == 1.0
    assert cosine_threshold == pytest.approx(1 - 0.41 / 2)


def test_module_does_not_import_tensorflow_or_keras():
    tree = ast.parse(inspect.getsource(verification_module))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"typing", "numpy", "sklearn", "evaluation"}
    roc_tree = ast.parse(inspect.getsource(roc_module))
    assert {alias.name.split(".")[0] for node in ast.walk(roc_tree) if isinstance(node, ast.Import)
            for alias in node.names} | {node.module.split(".")[0] for node in ast.walk(roc_tree)
                                        if isinstance(node, ast.ImportFrom)} <= {"numpy", "sklearn"}


def pairs_with_cosines(cosines):
    """(2P, 2) embeddings whose pair p has cosine similarity cosines[p] (first row (1, 0), second at that angle)."""
    angles = np.arccos(cosines)
    rows = np.zeros((2 * len(cosines), 2))
    rows[0::2] = [3.0, 0.0]
    rows[1::2] = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 0.5
    return rows


def test_roc_auc_and_tar_at_far_of_the_cosine_scores_match_closed_forms():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    different = rng.permutation(np.arange(1000) / 1000.0 - 0.2)  # distinct, 1000 different pairs
    ranked = np.sort(different)[::-1]
    # A same pair just above each of the 12 highest different pairs makes a vertical ROC step at FPR k/1000,
    # so sklearn's drop_intermediate keeps the points at FAR 1e-3 and 1e-2.
    same = np.concatenate([rng.uniform(0.3, 0.99, size=288), ranked[:12] + 0.0005])
    order = rng.permutation(1300)
    cosines = np.concatenate([different, same])[order]
    issame = np.concatenate([np.zeros(1000, bool), np.ones(300, bool)])[order]
    metrics = verification_metrics(pairs_with_cosines(cosines), issame)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(issame, cosines), abs=1e-12)
    # FAR k/1000 is reached after the k-th highest different pair; insightface takes the top of that vertical
    # ROC step: every same pair above the (k+1)-th highest different pair is accepted.
    assert metrics["tar_at_far_1e-3"] == np.mean(same > ranked[1])
    assert metrics["tar_at_far_1e-2"] == np.mean(same > ranked[10])
    fpr, tpr = roc_metrics(pairs_with_cosines(cosines), issame)[1]
    assert fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1 and 0.01 in fpr


def test_roc_metrics_are_nan_with_only_one_class():
    metrics = verification_metrics(np.random.default_rng(0).normal(size=(40, 4)), np.ones(20, dtype=bool))
    assert np.isnan(metrics["roc_auc"]) and np.isnan(metrics["tar_at_far_1e-2"])
    assert roc_metrics(np.ones((4, 2)), [False, False])[1] is None


# --- Errors ------------------------------------------------------------------------------------

def test_odd_row_count_is_rejected_with_the_count():
    with pytest.raises(ValueError, match=r"even number of rows.*got 21 rows"):
        verification_metrics(np.ones((21, 4)), np.ones(10, dtype=bool))


def test_issame_length_mismatch_names_both_sizes():
    with pytest.raises(ValueError, match=r"40 embedding rows make 20 pairs.*shape \(19,\)"):
        verification_metrics(np.ones((40, 4)), np.ones(19, dtype=bool))


def test_fewer_pairs_than_folds_is_rejected():
    with pytest.raises(ValueError, match=r"n_folds=10 pairs.*got 6 pairs"):
        verification_metrics(np.ones((12, 4)), np.ones(6, dtype=bool))


def test_non_2d_embeddings_are_rejected():
    with pytest.raises(ValueError, match=r"2-D array.*shape \(40,\)"):
        verification_metrics(np.ones(40), np.ones(20, dtype=bool))


def test_non_finite_embeddings_are_rejected():
    embeddings = np.ones((40, 4))
    embeddings[3, 1] = np.nan
    embeddings[5, 0] = np.inf
    with pytest.raises(ValueError, match="2 non-finite values"):
        verification_metrics(embeddings, np.ones(20, dtype=bool))


@pytest.mark.parametrize("n_folds", [1, 0, 2.5, True])
def test_bad_fold_count_is_rejected(n_folds):
    with pytest.raises(ValueError, match="n_folds must be an integer >= 2"):
        verification_metrics(np.ones((40, 4)), np.ones(20, dtype=bool), n_folds=n_folds)
