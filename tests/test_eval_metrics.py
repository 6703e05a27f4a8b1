"""The eval measures against an independent implementation (scikit-learn) or worked by hand on small
cases: accuracy, top-k, balanced accuracy, confusion matrix, reliability bins and ECE, AP, P@k, R@k, AP@k."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    top_k_accuracy_score,
)
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from eval import metrics, ranking

LABELS = ["lake", "other", "pyramid", "tower"]
TRUTH = ["lake", "lake", "lake", "pyramid", "pyramid", "tower", "other", "other", "other", "tower", "lake"]
ANSWER = ["lake", "pyramid", "lake", "pyramid", "other", "tower", "other", "lake", "tower", "tower", "other"]


def test_accuracy_and_balanced_accuracy_agree_with_scikit_learn() -> None:
    assert metrics.accuracy(TRUTH, ANSWER) == pytest.approx(accuracy_score(TRUTH, ANSWER))
    assert metrics.balanced_accuracy(TRUTH, ANSWER) == pytest.approx(balanced_accuracy_score(TRUTH, ANSWER))
    assert metrics.per_class_recall(TRUTH, ANSWER) == pytest.approx(
        {"lake": 2 / 4, "other": 1 / 3, "pyramid": 1 / 2, "tower": 2 / 2}
    )


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_balanced_accuracy_ignores_answers_no_photo_has() -> None:
    truth, answer = ["a", "a", "b"], ["a", "c", "c"]
    assert metrics.balanced_accuracy(truth, answer) == pytest.approx(balanced_accuracy_score(truth, answer))


def test_confusion_matrix_agrees_with_scikit_learn() -> None:
    ours = metrics.confusion_matrix(TRUTH, ANSWER, LABELS)
    assert ours.tolist() == sk_confusion_matrix(TRUTH, ANSWER, labels=LABELS).tolist()
    assert ours.sum() == len(TRUTH)
    # A label order of our own, and a label left out, as scikit-learn does.
    subset = ["tower", "lake", "pyramid"]
    assert metrics.confusion_matrix(TRUTH, ANSWER, subset).tolist() == (
        sk_confusion_matrix(TRUTH, ANSWER, labels=subset).tolist()
    )


def test_top_k_accuracy_agrees_with_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    classes = ["kremlin", "lake", "pyramid", "ruins", "tower"]  # scikit-learn wants them sorted
    scores = rng.random((40, len(classes)))
    truth = [classes[i] for i in rng.integers(0, len(classes), 40)]
    ranked = [[classes[i] for i in np.argsort(-row)] for row in scores]
    for k in (1, 3):
        expected = top_k_accuracy_score(truth, scores, k=k, labels=classes)
        assert metrics.top_k_accuracy(truth, ranked, k) == pytest.approx(expected)
    assert metrics.top_k_accuracy(truth, ranked, 1) == pytest.approx(
        metrics.accuracy(truth, [r[0] for r in ranked])
    )


def test_reliability_bins_agree_with_scikit_learns_calibration_curve() -> None:
    rng = np.random.default_rng(5)
    confidence = rng.random(200)
    correct = rng.random(200) < confidence
    bins = metrics.reliability_bins(confidence.tolist(), correct.tolist(), bins=10)
    filled = [b for b in bins if b.count]
    prob_true, prob_pred = calibration_curve(correct, confidence, n_bins=10, strategy="uniform")
    assert [b.accuracy for b in filled] == pytest.approx(prob_true.tolist())
    assert [b.mean_confidence for b in filled] == pytest.approx(prob_pred.tolist())
    assert sum(b.count for b in bins) == 200
    assert (bins[0].low, bins[0].high) == (0.0, pytest.approx(0.1))


def test_expected_calibration_error_worked_by_hand() -> None:
    # Bin (0.2, 0.3]: 0.25, 0.3 -> mean 0.275, 1 of 2 right; bin (0.8, 0.9]: 0.9 x 2 -> both right;
    # bin (0.9, 1]: 1.0 -> wrong; 0.0 joins the first bin and is wrong.
    confidence = [0.25, 0.3, 0.9, 0.9, 1.0, 0.0]
    correct = [True, False, True, True, False, False]
    expected = (2 * abs(0.5 - 0.275) + 2 * abs(1.0 - 0.9) + 1 * abs(0 - 1.0) + 1 * 0.0) / 6
    assert metrics.expected_calibration_error(confidence, correct, bins=10) == pytest.approx(expected)
    table = metrics.reliability_bins(confidence, correct, bins=10)
    assert [b.count for b in table] == [1, 0, 2, 0, 0, 0, 0, 0, 2, 1]
    assert np.isnan(table[1].accuracy) and np.isnan(table[1].mean_confidence)
    perfect = metrics.expected_calibration_error([1.0, 1.0, 0.5, 0.5], [True, True, True, False], bins=4)
    assert perfect == pytest.approx(0.0)


def test_average_precision_agrees_with_scikit_learn() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        scores = rng.random(30)
        relevant_mask = rng.random(30) < 0.3
        relevant_mask[rng.integers(0, 30)] = True
        order = np.argsort(-scores).tolist()
        relevant = set(np.flatnonzero(relevant_mask).tolist())
        expected = average_precision_score(relevant_mask, scores)
        assert ranking.average_precision(order, relevant) == pytest.approx(expected)


def test_a_relevant_photo_never_retrieved_costs_its_share() -> None:
    # Found at ranks 1 and 3 of 3 results; the third relevant photo is not in the list.
    assert ranking.average_precision(["a", "x", "b"], {"a", "b", "c"}) == pytest.approx((1 + 2 / 3) / 3)
    assert np.isnan(ranking.average_precision(["a"], set()))


def test_precision_recall_hit_and_ap_at_k_worked_by_hand() -> None:
    results = ["x", "a", "y", "b", "z", "c"]
    relevant = {"a", "b", "c", "d"}
    assert ranking.precision_at_k(results, relevant, 1) == 0.0
    assert ranking.precision_at_k(results, relevant, 4) == pytest.approx(2 / 4)
    assert ranking.precision_at_k(results, relevant, 10) == pytest.approx(3 / 10)  # missing ones are wrong
    assert ranking.recall_at_k(results, relevant, 1) == 0.0
    assert ranking.recall_at_k(results, relevant, 5) == pytest.approx(2 / 4)
    assert ranking.recall_at_k(results, relevant, 10) == pytest.approx(3 / 4)
    assert ranking.hit_at_k(results, relevant, 1) == 0.0 and ranking.hit_at_k(results, relevant, 2) == 1.0
    # AP@k (GLDv2): sum of P@i at hits within k, over min(k, relevant).
    assert ranking.average_precision_at_k(results, relevant, 4) == pytest.approx((1 / 2 + 2 / 4) / 4)
    assert ranking.average_precision_at_k(results, relevant, 2) == pytest.approx((1 / 2) / 2)
    assert ranking.average_precision_at_k(results, relevant, 100) == pytest.approx(
        ranking.average_precision(results, relevant)
    )
    assert ranking.mean([0.5, float("nan"), 1.0]) == pytest.approx(0.75)
    assert np.isnan(ranking.mean([float("nan")]))


@pytest.mark.parametrize(
    "call", [lambda: ranking.precision_at_k([], {"a"}, 0), lambda: metrics.top_k_accuracy([], [], 0)]
)
def test_k_must_be_positive(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="k must be at least 1"):
        call()


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="as many answers as truths"):
        metrics.accuracy(["a", "b"], ["a"])
