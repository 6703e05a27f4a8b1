"""Which prompts help and which hurt: the prompt ensemble against each single prompt of each class.

For every prompt of every class, top-1 accuracy is measured twice on the same photos, with the other
classes' ensembles unchanged: with that class's vector replaced by the prompt alone ("single"), and by the
ensemble without that prompt ("without"). A prompt helps when leaving it out costs accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.classes import LandmarkClass


@dataclass(frozen=True)
class PromptResult:
    """One prompt's accuracies (all photos of a real class) and its class's recall, alone and left out."""

    class_id: str
    prompt: str
    single_accuracy: float
    without_accuracy: float
    single_class_recall: float
    without_class_recall: float


def _unit_mean(vectors: np.ndarray) -> np.ndarray:
    mean = np.asarray(vectors, dtype=np.float64).mean(axis=0)
    result: np.ndarray = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return result


def _scores(
    image_vectors: np.ndarray, matrix: np.ndarray, truth: np.ndarray, class_index: int
) -> tuple[float, float]:
    """(top-1 accuracy, recall of class `class_index`) with these class vectors."""
    answers = (image_vectors @ matrix.T).argmax(axis=1)
    own = truth == class_index
    recall = float(np.mean(answers[own] == class_index)) if own.any() else float("nan")
    return float(np.mean(answers == truth)), recall


def prompt_ablation(
    image_vectors: np.ndarray,
    truth: Sequence[str],
    classes: Sequence[LandmarkClass],
    prompt_vectors: Mapping[str, np.ndarray],
) -> tuple[float, list[PromptResult]]:
    """(ensemble top-1 accuracy, one result per prompt) over the photos whose truth is one of `classes`.

    `prompt_vectors[class_id]` holds that class's prompt embeddings, one row per prompt, in file order.
    The softmax does not change the argmax, so plain cosines decide."""
    index = {c.id: i for i, c in enumerate(classes)}
    keep = [i for i, t in enumerate(truth) if t in index]
    if not keep:
        raise ValueError("no photo of any class to measure the prompts on")
    vectors = np.asarray(image_vectors, dtype=np.float64)[keep]
    labels = np.asarray([index[truth[i]] for i in keep])
    ensemble = np.stack([_unit_mean(prompt_vectors[c.id]) for c in classes])
    ensemble_accuracy, _ = _scores(vectors, ensemble, labels, 0)
    results = []
    for c in classes:
        rows = np.asarray(prompt_vectors[c.id], dtype=np.float64)
        if len(rows) != len(c.prompts):
            raise ValueError(f"{c.id}: {len(rows)} prompt vectors for {len(c.prompts)} prompts")
        for j, prompt in enumerate(c.prompts):
            single = ensemble.copy()
            single[index[c.id]] = rows[j] / max(float(np.linalg.norm(rows[j])), 1e-12)
            without = ensemble.copy()
            if len(rows) > 1:
                without[index[c.id]] = _unit_mean(np.delete(rows, j, axis=0))
            single_acc, single_recall = _scores(vectors, single, labels, index[c.id])
            without_acc, without_recall = _scores(vectors, without, labels, index[c.id])
            results.append(PromptResult(c.id, prompt, single_acc, without_acc, single_recall, without_recall))
    return ensemble_accuracy, results


def prompts_section(ensemble_accuracy: float, results: Sequence[PromptResult]) -> dict[str, Any]:
    """The report's form: the ensemble's accuracy and one row per prompt, with its deltas."""
    return {
        "ensemble_accuracy": ensemble_accuracy,
        "rows": [
            {
                **asdict(r),
                "single_delta": r.single_accuracy - ensemble_accuracy,
                "without_delta": r.without_accuracy - ensemble_accuracy,
            }
            for r in results
        ],
    }
