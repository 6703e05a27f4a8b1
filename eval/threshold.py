"""The fit of the "none of these" threshold on a labelled set with an `other/` folder.

A photo's answer at threshold t is `other` when a distractor won it or its best class's confidence is
under t, else its best class. The fit picks the t that maximises balanced accuracy (mean per-class recall)
with `other` as a class. Answers only change where t crosses a photo's confidence, so the candidates are 0
and the midpoints between consecutive distinct confidences and above the highest; of equally good ones the
lowest wins (it answers `other` least often).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from core.calibration import Calibration
from core.classes import OTHER
from eval.metrics import accuracy, balanced_accuracy


@dataclass(frozen=True)
class ThresholdFit:
    """The fitted threshold and how the answers do at it; `curve` is (threshold, balanced accuracy)."""

    threshold: float
    balanced_accuracy: float
    accuracy: float
    coverage: float
    accuracy_covered: float
    curve: list[tuple[float, float]]

    def calibration(self, model: str, photos: int) -> Calibration:
        """What `data/calibration.json` stores for this fit."""
        return Calibration(
            threshold=self.threshold,
            model=model,
            fitted_at=datetime.now(UTC).isoformat(timespec="seconds"),
            photos=photos,
            balanced_accuracy=self.balanced_accuracy,
            coverage=self.coverage,
            accuracy_covered=self.accuracy_covered,
        )


def answers_at(
    threshold: float, best: Sequence[str], confidence: Sequence[float], distracted: Sequence[bool]
) -> list[str]:
    """Each photo's answer at this threshold: `other`, or its best class."""
    return [
        OTHER.id if lost or conf < threshold else cls
        for cls, conf, lost in zip(best, confidence, distracted, strict=True)
    ]


def candidate_thresholds(confidence: Sequence[float]) -> list[float]:
    """0, the midpoints between consecutive distinct confidences, and one above the highest (at most 1)."""
    values = np.unique(np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0))
    if not len(values):
        return [0.0]
    midpoints = ((values[:-1] + values[1:]) / 2).tolist()
    above = float((values[-1] + 1.0) / 2) if values[-1] < 1.0 else 1.0
    return sorted({0.0, *midpoints, above})


def fit_threshold(
    truth: Sequence[str], best: Sequence[str], confidence: Sequence[float], distracted: Sequence[bool]
) -> ThresholdFit:
    """The threshold with the best balanced accuracy; `truth` must include `other` photos."""
    if not len(truth) == len(best) == len(confidence) == len(distracted):
        raise ValueError("expected one best class, confidence and distractor flag per photo")
    if OTHER.id not in truth:
        raise ValueError(f"the labelled set has no '{OTHER.id}' photos, so no threshold can be fitted")
    curve = []
    for threshold in candidate_thresholds(confidence):
        curve.append(
            (threshold, balanced_accuracy(truth, answers_at(threshold, best, confidence, distracted)))
        )
    top = max(score for _, score in curve)
    chosen = min(t for t, score in curve if score == top)
    answers = answers_at(chosen, best, confidence, distracted)
    covered = [i for i, a in enumerate(answers) if a != OTHER.id]
    return ThresholdFit(
        threshold=chosen,
        balanced_accuracy=top,
        accuracy=accuracy(truth, answers),
        coverage=len(covered) / len(answers),
        accuracy_covered=(
            float(np.mean([truth[i] == answers[i] for i in covered])) if covered else float("nan")
        ),
        curve=curve,
    )
