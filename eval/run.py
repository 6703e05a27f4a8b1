"""One precision of the model measured on every input: fill the eval shards, then classification (with the
threshold fit when the labelled set has `other/`), text -> image, same-class image -> image and the revisited
protocol, all through `eval.measure`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.model import ClipModel
from core.settings import Settings
from core.store import IMAGES, VectorStore
from core.zero_shot import classifier_spec
from eval import measure
from eval.collection import EvalPhoto, FilledSet, fill, open_eval_store
from eval.inputs import Inputs
from eval.revisited_data import RevisitedDataset
from eval.threshold import ThresholdFit
from search import SearchService

LABELLED = "labelled"


@dataclass
class PrecisionRun:
    """The sections measured at one precision, the filled shards, and the fit (main precision only)."""

    precision: str
    sections: dict[str, Any] = field(default_factory=dict)
    filled: dict[str, FilledSet] = field(default_factory=dict)
    fit: ThresholdFit | None = None
    seconds: float = 0.0

    def close(self) -> None:
        """Release the shards."""
        for filled in self.filled.values():
            filled.store.close()

    def labelled_vectors(self, keys: list[str]) -> np.ndarray:
        """The labelled set's vectors at this precision, in this order."""
        return self.filled[LABELLED].vectors(keys)


def measure_precision(
    settings: Settings,
    encoder: ClipModel,
    inputs: Inputs,
    library: VectorStore | None,
    fit_threshold: bool,
    threshold: float | None = None,
    show_progress: bool = True,
) -> PrecisionRun:
    """Measure everything at the encoder's precision (see the module docstring).

    `library`: the user's store to borrow vectors from (None to encode everything); `fit_threshold`: fit
    the "none of these" threshold when the labelled set has `other/`; `threshold`: classify at this one
    instead of the one in force (so precisions are compared at the same threshold)."""
    started = time.perf_counter()
    run = PrecisionRun(encoder.precision)
    photos: dict[str, Any] = {}
    if inputs.photos:
        filled = fill(
            settings,
            encoder,
            open_eval_store(settings, LABELLED, encoder),
            inputs.photos,
            library,
            f"{LABELLED} ({encoder.precision})",
            show_progress,
        )
        run.filled[LABELLED] = filled
        photos[LABELLED] = filled.report.as_dict()
        service = measure.service_over(settings, encoder, filled)
        keys = [k for k in inputs.labels if k in filled.ids]
        if keys:
            _classification(run, settings, encoder, service, filled, inputs, keys, fit_threshold, threshold)
            unique: dict[str, str] = {}
            for key in keys:
                unique.setdefault(filled.ids[key], inputs.labels[key])
            run.sections["image_to_image"] = measure.same_class(
                service, list(unique), list(unique.values()), show_progress
            )
        if inputs.queries:
            relevant = [[filled.ids[k] for k in keys if k in filled.ids] for keys in inputs.relevant]
            depth = max(1, filled.store.count(IMAGES))
            run.sections["text_to_image"] = measure.text_to_image(
                service, inputs.queries, relevant, depth, show_progress
            )
    revisited: dict[str, Any] = {}
    for dataset in inputs.revisited:
        db = fill(
            settings,
            encoder,
            open_eval_store(settings, dataset.name, encoder),
            [_photo(dataset, i) for i in range(len(dataset.imlist))],
            library,
            f"{dataset.name} ({encoder.precision})",
            show_progress,
        )
        run.filled[dataset.name] = db
        photos[dataset.name] = db.report.as_dict()
        service = measure.service_over(settings, encoder, db)
        revisited[dataset.name] = measure.revisited_protocol(service, dataset, db, show_progress)
    if revisited:
        run.sections["revisited"] = revisited
    run.sections["photos"] = photos
    run.seconds = time.perf_counter() - started
    return run


def _photo(dataset: RevisitedDataset, index: int) -> EvalPhoto:
    return EvalPhoto(dataset.imlist[index], dataset.database_path(index))


def _classification(
    run: PrecisionRun,
    settings: Settings,
    encoder: ClipModel,
    service: SearchService,
    filled: FilledSet,
    inputs: Inputs,
    keys: list[str],
    fit_threshold: bool,
    threshold: float | None,
) -> None:
    classified = measure.classify_stored(service, keys, [inputs.labels[k] for k in keys], filled)
    in_force = classified.classifier.threshold
    labelled = inputs.labelled
    if fit_threshold and labelled is not None and labelled.has_other:
        run.fit = measure.fit(classified)
        before = measure.classification_report(classified, encoder.text)
        spec = classifier_spec(settings.classes_file, settings.data_dir, encoder.identity.model)
        run.sections["threshold"] = {
            "fitted": run.fit.threshold,
            "before": in_force,
            "before_from": spec.threshold_source.split(" ", 1)[0],
            "balanced_accuracy": run.fit.balanced_accuracy,
            "balanced_accuracy_before": before["balanced_accuracy"],
            "accuracy": run.fit.accuracy,
            "coverage": run.fit.coverage,
            "accuracy_covered": run.fit.accuracy_covered,
        }
        threshold = run.fit.threshold
    run.sections["classification"] = measure.classification_report(classified, encoder.text, threshold)
