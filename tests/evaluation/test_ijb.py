"""IJB 1:1 verification against a loop-by-loop NumPy re-computation of insightface's eval_ijbc.py."""
import numpy as np
import pytest
from sklearn.metrics import roc_curve

from evaluation import ijb
from evaluation.ijb import ijb_verification
from evaluation.roc import tar_at_far


def insightface_reference(features, faceness, templates, medias, p1, p2, labels, use_norm_score, use_detector_score,
                          fars):
    """The protocol written the way insightface writes it: per-template loops, template2id, min(zip(...))."""
    feats = features.copy()
    if not use_norm_score:
        feats = feats / np.sqrt(np.sum(feats ** 2, -1, keepdims=True))
    if use_detector_score:
        feats = feats * faceness[:, np.newaxis]
    unique_templates = np.unique(templates)
    template_feats = np.zeros((len(unique_templates), feats.shape[1]))
    for count, uqt in enumerate(unique_templates):
        (ind_t,) = np.where(templates == uqt)
        face_feats, face_medias = feats[ind_t], medias[ind_t]
        media_feats = []
        for media in np.unique(face_medias):
            (ind_m,) = np.where(face_medias == media)
            media_feats.append(np.mean(face_feats[ind_m], axis=0))
        template_feats[count] = np.sum(media_feats, axis=0)
    template_feats = template_feats / np.sqrt(np.sum(template_feats ** 2, -1, keepdims=True))
    template2id = np.zeros(max(unique_templates) + 1, dtype=int)
    for count, uqt in enumerate(unique_templates):
        template2id[uqt] = count
    scores = np.array([template_feats[template2id[a]] @ template_feats[template2id[b]] for a, b in zip(p1, p2)])
    fpr, tpr, _ = roc_curve(labels, scores)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    tars = {}
    for far in fars:
        _, min_index = min(zip(abs(fpr - far), range(len(fpr))))
        tars[far] = tpr[min_index]
    return scores, tars


def random_protocol(seed, identities=12, dim=8):
    """Random IJB-like data: several templates per identity, several medias per template, several images per media."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, dim))
    features, faceness, templates, medias, owners = [], [], [], [], []
    template_id, media_id = 3, 100
    for identity in range(identities):
        for _ in range(rng.integers(2, 4)):
            template_id += int(rng.integers(1, 4))  # ids with gaps, not 0..T-1
            owners.append((template_id, identity))
            for _ in range(rng.integers(1, 4)):
                media_id += 1
                for _ in range(rng.integers(1, 4)):
                    features.append(centres[identity] + rng.normal(scale=1.5, size=dim) * rng.uniform(0.5, 3))
                    faceness.append(rng.uniform(0.3, 1.0))
                    templates.append(template_id)
                    medias.append(media_id)
    order = rng.permutation(len(features))  # images of one template are not contiguous
    pairs = [(a, b, int(ia == ib)) for i, (a, ia) in enumerate(owners) for b, ib in owners[i + 1:]]
    p1, p2, labels = (np.array(column) for column in zip(*pairs))
    return (np.array(features)[order], np.array(faceness)[order], np.array(templates)[order], np.array(medias)[order],
            p1, p2, labels)


@pytest.mark.parametrize("use_norm_score", [True, False])
@pytest.mark.parametrize("use_detector_score", [True, False])
def test_equals_the_insightface_loops(use_norm_score, use_detector_score, monkeypatch):
    monkeypatch.setattr(ijb, "PAIR_CHUNK", 7)  # several chunks, the last one partial
    data = random_protocol(seed=int(use_norm_score) * 2 + int(use_detector_score))
    fars = (1e-3, 1e-2, 0.05, 1e-1, 0.3)
    result = ijb_verification(*data, use_norm_score=use_norm_score, use_detector_score=use_detector_score, fars=fars)
    scores, tars = insightface_reference(*data, use_norm_score, use_detector_score, fars)
    assert len(data[4]) > 7 * 3
    np.testing.assert_allclose(result["scores"], scores, rtol=0, atol=1e-12)
    assert result["tar_at_far"] == pytest.approx(tars, abs=0)
    fpr, tpr = result["roc"]
    expected_fpr, expected_tpr, _ = roc_curve(data[6], scores)
    np.testing.assert_array_equal(fpr, expected_fpr)
    np.testing.assert_array_equal(tpr, expected_tpr)
    assert 0.5 < result["roc_auc"] <= 1.0


def test_the_four_variants_give_different_scores():
    data = random_protocol(seed=5)
    variants = [ijb_verification(*data, use_norm_score=n, use_detector_score=d)["scores"]
                for n in (True, False) for d in (True, False)]
    for index, first in enumerate(variants):
        for second in variants[index + 1:]:
            assert not np.allclose(first, second)


def test_tie_rule_at_equal_fpr_takes_the_largest_tpr():
    # Negatives 0.9, 0.1, 0.05, 0.0; positives 0.8, 0.7, 0.6: a vertical ROC segment at FPR 1/4.
    labels = np.array([0, 1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.05, 0.0])
    fpr, tpr, _ = roc_curve(labels, scores)
    assert list(fpr).count(0.25) == 2  # both ends of the vertical segment survive drop_intermediate
    assert tar_at_far(fpr, tpr, 0.25) == 1.0
    assert tar_at_far(fpr, tpr, 0.2) == 1.0


def test_tie_rule_between_two_fprs_equally_far_takes_the_larger_fpr():
    fpr = np.array([0.0, 0.25, 0.75, 1.0])
    tpr = np.array([0.0, 0.5, 0.9, 1.0])
    assert tar_at_far(fpr, tpr, 0.5) == 0.9
    assert tar_at_far(fpr, tpr, 0.2) == 0.5


def test_a_pair_template_without_images_is_named():
    features, faceness, templates, medias, p1, p2, labels = random_protocol(seed=1)
    p2 = p2.copy()
    p2[3] = 99999
    with pytest.raises(ValueError, match=r"pair_templates2: 1 template id\(s\).*\[99999\]"):
        ijb_verification(features, faceness, templates, medias, p1, p2, labels)


def test_length_mismatch_is_named():
    features, faceness, templates, medias, p1, p2, labels = random_protocol(seed=1)
    with pytest.raises(ValueError, match="faceness must have one entry per image"):
        ijb_verification(features, faceness[:-1], templates, medias, p1, p2, labels)
