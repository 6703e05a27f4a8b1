"""The "none of these" threshold fit: on constructed cases where the right answer is known, and against a
brute-force scan with scikit-learn's balanced accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from eval.threshold import answers_at, candidate_thresholds, fit_threshold


def test_a_clean_gap_is_split_in_the_middle() -> None:
    # Class photos are answered right at confidence 0.6 and above; `other` photos score 0.4 and below.
    truth = ["lake", "lake", "tower", "tower", "other", "other", "other"]
    best = ["lake", "lake", "tower", "tower", "lake", "tower", "lake"]
    confidence = [0.9, 0.6, 0.7, 0.8, 0.4, 0.3, 0.35]
    fit = fit_threshold(truth, best, confidence, [False] * 7)
    assert fit.threshold == pytest.approx(0.5)
    assert fit.balanced_accuracy == 1.0 and fit.accuracy == 1.0
    assert fit.coverage == pytest.approx(4 / 7) and fit.accuracy_covered == 1.0
    assert (0.0, pytest.approx(balanced_accuracy_score(truth, best))) in fit.curve


def test_a_distractor_win_is_other_at_any_threshold() -> None:
    truth = ["lake", "other", "other"]
    best = ["lake", "lake", "lake"]
    # The second photo is confident but a distractor won it: no floor is needed, 0 is best and lowest.
    fit = fit_threshold(truth, best, [0.5, 0.95, 0.2], [False, True, False])
    assert fit.threshold == pytest.approx(0.35)
    assert answers_at(fit.threshold, best, [0.5, 0.95, 0.2], [False, True, False]) == [
        "lake",
        "other",
        "other",
    ]
    only_distractors = fit_threshold(truth, best, [0.5, 0.95, 0.9], [False, True, True])
    assert only_distractors.threshold == 0.0 and only_distractors.balanced_accuracy == 1.0


def test_a_trade_off_picks_the_best_balanced_accuracy() -> None:
    # One `other` photo (0.7) scores above a right class photo (0.65): no threshold gets everything right.
    truth = ["a", "a", "a", "b", "other", "other", "other"]
    best = ["a", "a", "a", "b", "a", "b", "a"]
    confidence = [0.9, 0.8, 0.65, 0.95, 0.7, 0.5, 0.3]
    fit = fit_threshold(truth, best, confidence, [False] * 7)
    # At 0.675: a 2/3, b 1, other 1 -> 8/9. At 0.575: a 1, b 1, other 2/3 -> 8/9 too; the lower one wins.
    assert fit.balanced_accuracy == pytest.approx(8 / 9)
    assert fit.threshold == pytest.approx(0.575)


@pytest.mark.parametrize("seed", range(3))
def test_the_fit_is_the_best_of_a_fine_scan(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    truth = rng.choice(["a", "b", "c", "other"], size=n).tolist()
    best = [t if t != "other" and rng.random() < 0.8 else str(rng.choice(["a", "b", "c"])) for t in truth]
    confidence = np.round(rng.random(n), 2).tolist()  # on a 0.01 grid, so the scan sees every gap
    distracted = (rng.random(n) < 0.1).tolist()
    fit = fit_threshold(truth, best, confidence, distracted)
    scan = [
        balanced_accuracy_score(truth, answers_at(t, best, confidence, distracted))
        for t in np.linspace(0, 1, 401)
    ]
    assert fit.balanced_accuracy == pytest.approx(max(scan))
    assert balanced_accuracy_score(truth, answers_at(fit.threshold, best, confidence, distracted)) == (
        pytest.approx(fit.balanced_accuracy)
    )


def test_candidates_and_refusals() -> None:
    assert candidate_thresholds([0.2, 0.2, 0.6]) == pytest.approx([0.0, 0.4, 0.8])
    assert candidate_thresholds([1.0]) == [0.0, 1.0]
    with pytest.raises(ValueError, match="no 'other' photos"):
        fit_threshold(["a"], ["a"], [0.5], [False])
    with pytest.raises(ValueError, match="one best class"):
        fit_threshold(["a", "other"], ["a"], [0.5], [False])


def test_the_fit_becomes_a_calibration() -> None:
    fit = fit_threshold(["a", "other"], ["a", "a"], [0.9, 0.1], [False, False])
    calibration = fit.calibration("some/model", photos=2)
    assert calibration.threshold == fit.threshold == pytest.approx(0.5)
    assert calibration.model == "some/model" and calibration.photos == 2 and calibration.coverage == 0.5
