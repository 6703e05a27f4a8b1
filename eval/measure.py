"""Measuring one precision of the model on the filled eval shards, through the product's search layer.

A `SearchService` is built over each eval shard with the model under test, so text queries go through
`SearchService.search` (its text path, whatever tower it routes a text to), "same class" image queries are
"more like this" of the stored photo (`StoredTerm`), and a revisited query is an uploaded crop
(`UploadTerm`). Classification scores the stored vectors with the service's classifier, as ingest labels.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from tqdm import tqdm

from core.classes import OTHER
from core.model import ClipModel, TextTower
from core.settings import Settings
from core.store import IMAGES, PROMPTS
from core.zero_shot import Classification, ZeroShotClassifier, classifier_spec
from eval import revisited
from eval.classification import classification_section
from eval.collection import FilledSet
from eval.prompts import prompt_ablation, prompts_section
from eval.queries import TextQuery
from eval.retrieval import same_class_section, text_to_image_section
from eval.revisited_data import RevisitedDataset
from eval.threshold import ThresholdFit, fit_threshold
from search import SearchService
from search.query import PageRequest, Query, StoredTerm, TextTerm, UploadTerm

SAME_CLASS_DEPTH = 100


def service_over(settings: Settings, encoder: ClipModel, filled: FilledSet) -> SearchService:
    """The product's search service over an eval shard, with the classes file and threshold in force."""
    spec = classifier_spec(settings.classes_file, settings.data_dir, encoder.identity.model)
    classifier = ZeroShotClassifier.from_spec(spec, encoder.text, encoder.logit_scale)
    filled.store.ensure_collection(PROMPTS, encoder.identity.as_meta())
    classifier.save(filled.store, encoder.identity.as_meta(), spec.fingerprint())
    return SearchService(settings, encoder=encoder, store=filled.store)


@dataclass
class Classified:
    """The labelled photos' classifications at one threshold, and the classifier that gave them."""

    truth: list[str]
    answers: list[Classification]
    vectors: np.ndarray
    classifier: ZeroShotClassifier


def classify_stored(
    service: SearchService, keys: Sequence[str], truth: Sequence[str], filled: FilledSet
) -> Classified:
    """Classify the stored vectors of the labelled photos with the service's classifier."""
    vectors = filled.vectors(keys)
    classifier = service.classifier()
    return Classified(list(truth), classifier.classify(vectors), vectors, classifier)


def classification_report(
    classified: Classified, tower: TextTower, threshold: float | None = None
) -> dict[str, Any]:
    """The classification section (at `threshold` when given, else the classifier's own), with the prompt
    ensemble against each single prompt (each prompt embedded by `tower`, the classifier's text tower)."""
    classifier = classified.classifier
    answers = classified.answers
    if threshold is not None and threshold != classifier.threshold:
        classifier = classifier.with_threshold(threshold)
        answers = classifier.classify(classified.vectors)
    labels = [c.id for c in classifier.classes] + [OTHER.id]
    section = classification_section(
        classified.truth,
        [a.label.id for a in answers],
        [[a.label.id, *(s.cls.id for s in a.top3)] for a in answers],
        [a.best.confidence for a in answers],
        [a.best.cls.id == t for a, t in zip(answers, classified.truth, strict=True)],
        labels,
    )
    section["threshold"] = classifier.threshold
    section["answered_other"] = sum(a.is_other for a in answers)
    section["other_by_distractor"] = sum(a.reason == "distractor" for a in answers)
    if any(t != OTHER.id for t in classified.truth):
        prompt_vectors = {c.id: tower.encode_texts(list(c.prompts)) for c in classifier.classes}
        ensemble, rows = prompt_ablation(
            classified.vectors, classified.truth, classifier.classes, prompt_vectors
        )
        section["prompts"] = prompts_section(ensemble, rows)
    return section


def fit(classified: Classified) -> ThresholdFit:
    """The "none of these" threshold that maximises balanced accuracy on these photos."""
    distracted = classified.classifier.winning_distractors(classified.vectors) >= 0
    return fit_threshold(
        classified.truth,
        [a.best.cls.id for a in classified.answers],
        [a.best.confidence for a in classified.answers],
        distracted.tolist(),
    )


def text_to_image(
    service: SearchService,
    queries: Sequence[TextQuery],
    relevant_ids: Sequence[Sequence[str]],
    depth: int,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Each query through the service's text search, ranked `depth` deep, scored per language."""
    ranked = []
    for query in tqdm(queries, desc="text queries", unit="query", leave=False, disable=not show_progress):
        page = service.search(Query(TextTerm(query.text), page=PageRequest(k=depth)))
        ranked.append([r.id for r in page.results])
    by_id = [replace(q, relevant=tuple(ids)) for q, ids in zip(queries, relevant_ids, strict=True)]
    return text_to_image_section(by_id, ranked)


def same_class(
    service: SearchService, point_ids: Sequence[str], labels: Sequence[str], show_progress: bool = True
) -> dict[str, Any]:
    """ "More like this" of every photo of a real class; relevant = the other photos of its class."""
    index = {pid: i for i, pid in enumerate(point_ids)}
    neighbours: list[list[int]] = []
    for pid, label in tqdm(
        list(zip(point_ids, labels, strict=True)),
        desc="more like this",
        unit="photo",
        leave=False,
        disable=not show_progress,
    ):
        if label == OTHER.id:
            neighbours.append([])
            continue
        page = service.search(Query(StoredTerm(pid), page=PageRequest(k=SAME_CLASS_DEPTH)))
        neighbours.append([index[r.id] for r in page.results if r.id in index])
    # `other` photos are in the database but are no class: each is its own, so nothing is relevant to it.
    own = [f"{OTHER.id}:{i}" if label == OTHER.id else label for i, label in enumerate(labels)]
    return same_class_section(own, neighbours, map_k=SAME_CLASS_DEPTH)


def revisited_protocol(
    service: SearchService, dataset: RevisitedDataset, filled: FilledSet, show_progress: bool = True
) -> dict[str, Any]:
    """Every query cropped to its box and uploaded; the whole database ranked; Easy / Medium / Hard."""
    index = {
        filled.ids[name]: i for i, name in reversed(list(enumerate(dataset.imlist))) if name in filled.ids
    }
    depth = max(1, filled.store.count(IMAGES))
    rankings = []
    for q in tqdm(
        range(len(dataset.qimlist)),
        desc=f"{dataset.name} queries",
        unit="query",
        leave=False,
        disable=not show_progress,
    ):
        buffer = io.BytesIO()
        dataset.query_image(q).save(buffer, format="PNG")
        page = service.search(Query(UploadTerm(buffer.getvalue()), page=PageRequest(k=depth)))
        rankings.append([index[r.id] for r in page.results if r.id in index])
    return revisited.as_report(revisited.evaluate_revisited(rankings, dataset.gnd))
