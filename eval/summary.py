"""The precision comparison: the same headline measures for each precision, side by side, and how far each
precision's vectors are from the configured one's on the same photos."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eval.run import PrecisionRun

# (report key, path into a run's sections)
HEADLINES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("top1_accuracy", ("classification", "top1_accuracy")),
    ("top3_accuracy", ("classification", "top3_accuracy")),
    ("balanced_accuracy", ("classification", "balanced_accuracy")),
    ("ece", ("classification", "calibration", "ece")),
    ("image_map@100", ("image_to_image", "map@100")),
    ("image_p@1", ("image_to_image", "p@1")),
    ("text_ru_en_ratio_r@10", ("text_to_image", "ru_en", "ratio_r@10")),
)


def _get(sections: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = sections
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def headline(run: PrecisionRun) -> dict[str, Any]:
    """One precision's headline measures (absent ones left out)."""
    row: dict[str, Any] = {}
    for name, path in HEADLINES:
        value = _get(run.sections, path)
        if isinstance(value, int | float):
            row[name] = value
    for language, measures in (run.sections.get("text_to_image") or {}).items():
        if language != "ru_en":
            row[f"text_{language}_r@10"] = measures.get("r@10")
            row[f"text_{language}_map"] = measures.get("map")
    for dataset, setups in (run.sections.get("revisited") or {}).items():
        for setup in ("medium", "hard"):
            row[f"{dataset}_{setup}_map"] = setups[setup]["map"]
    encoded = sum(f.report.encoded for f in run.filled.values())
    seconds = sum(f.report.encode_seconds for f in run.filled.values())
    row["photos_encoded"] = encoded
    row["encode_images_per_s"] = encoded / seconds if seconds > 0 else None
    return row


def precision_summary(runs: Sequence[PrecisionRun], keys: Sequence[str]) -> dict[str, Any]:
    """{precision: headline measures + cosine to the first run's vectors of the labelled photos}."""
    first = runs[0]
    base = first.labelled_vectors(list(keys)) if keys else None
    summary: dict[str, Any] = {}
    for run in runs:
        row = headline(run)
        if base is not None and len(base):
            cosines = np.sum(base * run.labelled_vectors(list(keys)), axis=1)
            row[f"mean_cosine_to_{first.precision}"] = float(cosines.mean())
            row[f"min_cosine_to_{first.precision}"] = float(cosines.min())
        summary[run.precision] = row
    return summary
