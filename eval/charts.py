"""The report's PNG charts, drawn from the report's own JSON sections (so they always agree with it):
the confusion matrix, the reliability diagram and the per-prompt accuracy.

Figures are built with matplotlib's object API on the Agg canvas: no display, no pyplot global state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=110)
    return path


def confusion_matrix_png(path: Path, section: dict[str, Any]) -> Path:
    """The confusion matrix (`{"labels", "matrix"}`), rows = truth, columns = answer, counts in cells."""
    labels = list(section["labels"])
    matrix = np.asarray(section["matrix"], dtype=float)
    side = 1.2 + 0.55 * len(labels)
    figure = Figure(figsize=(side + 1.5, side))
    axes = figure.add_subplot()
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="share of the row")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("answer")
    axes.set_ylabel("truth")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            axes.text(
                j,
                i,
                str(int(count)),
                ha="center",
                va="center",
                color="white" if shares[i, j] > 0.5 else "black",
            )
    axes.set_title("Confusion matrix")
    return _save(figure, path)


def reliability_png(path: Path, section: dict[str, Any]) -> Path:
    """The reliability diagram from `{"ece", "bins"}`: accuracy per confidence bin against the diagonal."""
    bins = [b for b in section["bins"] if b["count"]]
    figure = Figure(figsize=(5, 5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    centers = [(b["low"] + b["high"]) / 2 for b in bins]
    widths = [b["high"] - b["low"] for b in bins]
    axes.bar(
        centers, [b["accuracy"] for b in bins], width=widths, edgecolor="black", alpha=0.7, label="accuracy"
    )
    axes.plot(
        [b["mean_confidence"] for b in bins],
        [b["accuracy"] for b in bins],
        "o",
        color="black",
        label="mean confidence",
    )
    for center, b in zip(centers, bins, strict=True):
        axes.text(center, 0.02, str(b["count"]), ha="center", fontsize=7)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("shown confidence")
    axes.set_ylabel("accuracy")
    ece = section.get("ece")
    axes.set_title("Reliability" + (f" (ECE {ece:.3f})" if isinstance(ece, float) else ""))
    axes.legend(loc="upper left", fontsize=8)
    return _save(figure, path)


def prompts_png(path: Path, section: dict[str, Any]) -> Path:
    """Per-prompt accuracy from `{"ensemble_accuracy", "rows"}`: each prompt alone and left out."""
    rows = list(section["rows"])
    figure = Figure(figsize=(9, 1.2 + 0.28 * max(len(rows), 1)))
    axes = figure.add_subplot()
    names = [f"{r['class_id']}: {r['prompt'][:48]}" for r in rows]
    y = np.arange(len(rows))
    axes.barh(y - 0.2, [r["single_accuracy"] for r in rows], height=0.4, label="this prompt alone")
    axes.barh(y + 0.2, [r["without_accuracy"] for r in rows], height=0.4, label="ensemble without it")
    axes.axvline(section["ensemble_accuracy"], color="black", linestyle="--", label="ensemble")
    axes.set_yticks(y, names, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("top-1 accuracy")
    axes.set_title("Prompts: alone and left out of the ensemble")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    return _save(figure, path)
