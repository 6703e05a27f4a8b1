"""Classification measures: accuracy, top-k accuracy, balanced accuracy, the confusion matrix, and the
calibration of the shown confidence (expected calibration error and the reliability diagram's bins).

Labels are strings (class ids, `other` included); every function takes plain sequences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """The fraction of answers equal to the truth."""
    _same_length(y_true, y_pred)
    return float(np.mean([t == p for t, p in zip(y_true, y_pred, strict=True)])) if y_true else float("nan")


def top_k_accuracy(y_true: Sequence[str], ranked: Sequence[Sequence[str]], k: int) -> float:
    """The fraction of photos whose true label is among the first k of its ranked labels."""
    _same_length(y_true, ranked)
    if k < 1:
        raise ValueError("k must be at least 1")
    hits = [t in list(r)[:k] for t, r in zip(y_true, ranked, strict=True)]
    return float(np.mean(hits)) if hits else float("nan")


def per_class_recall(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, float]:
    """For each label present in the truth, the fraction of its photos answered with it."""
    _same_length(y_true, y_pred)
    truth, pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    return {label: float(np.mean(pred[truth == label] == label)) for label in sorted(set(y_true))}


def balanced_accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Mean per-class recall over the labels present in the truth (scikit-learn's balanced accuracy)."""
    recalls = per_class_recall(y_true, y_pred)
    return float(np.mean(list(recalls.values()))) if recalls else float("nan")


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """(labels, labels) counts: row = true label, column = answer; pairs outside `labels` are left out."""
    _same_length(y_true, y_pred)
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        if t in index and p in index:
            matrix[index[t], index[p]] += 1
    return matrix


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of the reliability diagram: confidences in (low, high] (the first bin includes 0)."""

    low: float
    high: float
    count: int
    mean_confidence: float
    accuracy: float


def reliability_bins(
    confidence: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1]: how many answers, their mean confidence and how many were right.

    Empty bins have NaN mean confidence and accuracy."""
    _same_length(confidence, correct)
    if bins < 1:
        raise ValueError("bins must be at least 1")
    conf = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    right = np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # (low, high] like scikit-learn's calibration_curve; a confidence of exactly 0 joins the first bin.
    which = np.clip(np.searchsorted(edges[1:-1], conf, side="left"), 0, bins - 1)
    result = []
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        result.append(
            ReliabilityBin(
                low=float(edges[b]),
                high=float(edges[b + 1]),
                count=count,
                mean_confidence=float(conf[members].mean()) if count else float("nan"),
                accuracy=float(right[members].mean()) if count else float("nan"),
            )
        )
    return result


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE: the count-weighted mean gap between accuracy and mean confidence over the reliability bins."""
    table = reliability_bins(confidence, correct, bins)
    total = sum(b.count for b in table)
    if not total:
        return float("nan")
    return float(sum(b.count * abs(b.accuracy - b.mean_confidence) for b in table if b.count) / total)


def _same_length(a: Sequence[object], b: Sequence[object]) -> None:
    if len(a) != len(b):
        raise ValueError(f"expected as many answers as truths, got {len(b)} for {len(a)}")
