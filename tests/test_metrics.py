"""Metrics: parity with scikit-learn and scipy, whole-set Spearman, degenerate inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from musicaffect.data.labels import CLASSES
from musicaffect.evaluation.metrics import (
    ConstantInputWarning,
    classification_metrics,
    flatten_metrics,
    pearson,
    regression_metrics,
    spearman,
)


def test_classification_metrics_match_sklearn(rng):
    y_true = rng.integers(0, 10, size=300)
    y_pred = np.where(rng.random(300) < 0.5, y_true, rng.integers(0, 10, size=300))
    m = classification_metrics(y_true, y_pred, classes=CLASSES)

    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    for i, name in enumerate(CLASSES):
        assert m["per_class"][name] == pytest.approx(
            {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]})
    for avg in ("macro", "micro", "weighted"):
        ap, ar, af, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=avg,
                                                            zero_division=0)
        assert (m[avg]["precision"], m[avg]["recall"], m[avg]["f1"]) == pytest.approx(
            (ap, ar, af))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert np.array_equal(np.array(m["confusion_matrix"]), skm.confusion_matrix(y_true, y_pred))
    assert "Trip-Hop" in m["report"] and "macro avg" in m["report"]
    json.dumps(m)  # plain types only


def test_absent_classes_still_listed_and_scores_accepted():
    y_true = np.array([0, 0, 1, 1])
    scores = np.zeros((4, 3))
    scores[[0, 1, 2, 3], [0, 1, 1, 1]] = 1.0  # predictions 0, 1, 1, 1; class 2 never appears
    m = classification_metrics(y_true, scores, classes=["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert np.array(m["confusion_matrix"]).shape == (3, 3)
    # macro average over the 2 classes present in labels or predictions (scikit-learn's
    # default); the class absent from both does not count as an F1 of 0
    f1_a, f1_b = 2 / 3, 0.8
    assert m["macro"]["f1"] == pytest.approx((f1_a + f1_b) / 2)
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y_true, scores.argmax(1), average="macro"))
    assert m["averaged_classes"] == ["a", "b"] and m["absent_classes"] == ["c"]
    assert "absent from both (not averaged): c" in m["report"]
    assert "2 of 3 classes" in m["report"]


def test_macro_f1_counts_a_class_only_predicted():
    # class 2 is predicted (wrongly) but never true: it is averaged, with F1 0
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 2, 1, 1])
    m = classification_metrics(y_true, y_pred, classes=["a", "b", "c", "d"])
    assert m["averaged_classes"] == ["a", "b", "c"] and m["absent_classes"] == ["d"]
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="weighted"))


def test_classification_metrics_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="outside 0..2"):
        classification_metrics([0, 3], [0, 1], classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="2 labels but y_pred has 3"):
        classification_metrics([0, 1], [0, 1, 1], classes=["a", "b"])


def test_spearman_equals_scipy_with_ties(rng):
    a = rng.integers(0, 5, size=200).astype(float)  # many ties
    b = a + rng.normal(scale=2.0, size=200)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
    assert pearson(a, b) == pytest.approx(stats.pearsonr(a, b)[0], abs=1e-12)


def test_whole_set_spearman_differs_from_batch_mean():
    # Each batch of 4 is perfectly ordered inside, but the batches are shifted against each
    # other: per-batch rho is 1, while over the whole set the ordering is poor.
    true = np.concatenate([np.arange(4) + 10 * k for k in range(4)]).astype(float)
    pred = np.concatenate([np.arange(4) - 10 * k for k in range(4)]).astype(float)
    batch_mean = np.mean([stats.spearmanr(true[i:i + 4], pred[i:i + 4])[0]
                          for i in range(0, 16, 4)])
    m = regression_metrics({"valence": true}, {"valence": pred})
    assert batch_mean == pytest.approx(1.0)
    assert m["per_target"]["valence"]["spearman"] == pytest.approx(stats.spearmanr(true, pred)[0])
    assert m["per_target"]["valence"]["spearman"] < 0.0


def test_regression_metrics_per_target_and_means(rng):
    y_true = {t: rng.random(100) for t in ("valence", "energy", "danceability")}
    y_pred = {t: (v + rng.normal(scale=0.2, size=100))[:, None] for t, v in y_true.items()}
    m = regression_metrics(y_true, y_pred)
    rhos = []
    for t in y_true:
        expected = stats.spearmanr(y_true[t], y_pred[t][:, 0])[0]
        assert m["per_target"][t]["spearman"] == pytest.approx(expected)
        assert m["per_target"][t]["mse"] == pytest.approx(
            np.mean((y_true[t] - y_pred[t][:, 0]) ** 2))
        assert m["per_target"][t]["n"] == 100
        rhos.append(expected)
    assert m["spearman_mean"] == pytest.approx(np.mean(rhos))
    assert m["targets"] == ["valence", "energy", "danceability"]
    json.dumps(m)
    flat = flatten_metrics(m, prefix="val_")
    assert flat["val_spearman_mean"] == pytest.approx(m["spearman_mean"])
    assert flat["val_energy_pearson"] == pytest.approx(m["per_target"]["energy"]["pearson"])


def test_regression_metrics_missing_prediction():
    with pytest.raises(ValueError, match="energy"):
        regression_metrics({"energy": np.ones(3)}, {"valence": np.ones(3)})


def test_constant_input_gives_nan_with_warning():
    # undefined, not 0.0 ("no correlation"): see issue 15 and test_faults_families.py
    with pytest.warns(ConstantInputWarning):
        assert np.isnan(spearman(np.ones(10), np.arange(10)))
    with pytest.warns(ConstantInputWarning):
        assert np.isnan(pearson([1.0], [2.0]))


def test_non_finite_pairs_dropped():
    a = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    b = np.array([2.0, 4.0, 1.0, 8.0, 10.0])
    with pytest.warns(RuntimeWarning, match="non-finite"):
        assert spearman(a, b) == pytest.approx(1.0)


def test_flatten_classification_metrics():
    m = classification_metrics([0, 1, 1], [0, 1, 0], classes=["a", "b"])
    flat = flatten_metrics(m, prefix="val_", per_item=False)
    assert flat["val_accuracy"] == pytest.approx(2 / 3)
    assert "val_macro_f1" in flat and "val_a_f1" not in flat
    assert all(isinstance(v, float) for v in flat.values())
