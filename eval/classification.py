"""The report's classification section from the answers on a labelled set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from eval import metrics


def classification_section(
    truth: Sequence[str],
    answers: Sequence[str],
    ranked: Sequence[Sequence[str]],
    confidence: Sequence[float],
    correct: Sequence[bool],
    labels: Sequence[str],
    bins: int = 10,
) -> dict[str, Any]:
    """Top-1 (the answer, `other` included) and top-3 (`ranked[i]`: the answer, then the top 3 classes,
    so an `other` photo answered `other` counts) accuracy, balanced
    accuracy, per-class recall, the confusion matrix over `labels`, and the calibration of the shown
    confidence (`confidence[i]` claimed, `correct[i]` whether that class was right)."""
    return {
        "photos": len(truth),
        "top1_accuracy": metrics.accuracy(truth, answers),
        "top3_accuracy": metrics.top_k_accuracy(truth, ranked, 3),
        "balanced_accuracy": metrics.balanced_accuracy(truth, answers),
        "per_class_recall": metrics.per_class_recall(truth, answers),
        "confusion_matrix": {
            "labels": list(labels),
            "matrix": metrics.confusion_matrix(truth, answers, labels).tolist(),
        },
        "calibration": {
            "ece": metrics.expected_calibration_error(confidence, correct, bins),
            "bins": [asdict(b) for b in metrics.reliability_bins(confidence, correct, bins)],
        },
    }
