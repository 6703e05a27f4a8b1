"""Zero-shot classification: class vectors from prompt ensembles, scored with CLIP's logit scale.

A class vector is the normalized mean of its prompts' text embeddings (as in the CLIP paper); a distractor
("people", "food", ...) gets one the same way. The answer is `other` ("None of these") when a distractor's
cosine beats every class's, or when the best class's confidence (softmax over the classes only, the number
the UI shows) is under the threshold (`core/calibration.py`). The top 3 always lists real classes. The
vectors and the threshold live in the `prompts` collection so the API scores against exactly what ingest
labelled with.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.calibration import DEFAULT_OTHER_THRESHOLD, other_threshold
from core.classes import OTHER, Distractor, LandmarkClass, load_classes_file
from core.model.towers import TextTower
from core.payload import ScoredClass, label_fields
from core.store.base import PROMPTS, PointRecord, VectorStore

_PROMPT_NAMESPACE = uuid.UUID("6f1c1e2a-5d0b-4a53-9a77-0b5f0c2d9e11")


@dataclass
class ClassScore:
    """A class and the probability the classifier gives it."""

    cls: LandmarkClass
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        """JSON form: id, names and confidence."""
        return {**self.cls.label(), "confidence": round(self.confidence, 6)}


@dataclass
class Classification:
    """The answer (a class or OTHER), the best real class with its confidence, and the top 3 real classes.

    `reason` says why the answer is OTHER: "distractor" (then `distractor` is the winner) or "low_confidence";
    None when the answer is the best class."""

    best: ClassScore
    top3: list[ClassScore]
    label: LandmarkClass
    reason: str | None = None
    distractor: Distractor | None = None

    @property
    def is_other(self) -> bool:
        """Whether the answer is "None of these"."""
        return self.label.id == OTHER.id

    def payload_fields(self, version: str) -> dict[str, Any]:
        """The fields stored with an image point (`core/payload.py label_fields`), labelled with the
        fingerprint `version` of what classified it; `confidence` is always the best real class's."""
        top3 = [ScoredClass(s.cls.id, round(s.confidence, 6)) for s in self.top3]
        return label_fields(self.label.id, self.best.confidence, top3, version)


def prompts_fingerprint(
    classes: list[LandmarkClass],
    model: str,
    distractors: list[Distractor] | tuple[Distractor, ...] = (),
    threshold: float = DEFAULT_OTHER_THRESHOLD,
) -> str:
    """A short hash of the classes, distractors, threshold and model: older stored labels get recomputed."""
    text = json.dumps(
        [[c.id, list(c.prompts)] for c in classes]
        + [model, [[d.id, list(d.prompts)] for d in distractors], round(float(threshold), 6)],
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ClassifierSpec:
    """What a classifier is built from: the classes file's classes and distractors, and the threshold."""

    classes: list[LandmarkClass]
    distractors: list[Distractor]
    threshold: float
    threshold_source: str
    model: str

    def fingerprint(self) -> str:
        """The labels version of photos labelled by this classifier."""
        return prompts_fingerprint(self.classes, self.model, self.distractors, self.threshold)


def classifier_spec(classes_file: Path, data_dir: Path, model: str) -> ClassifierSpec:
    """The classes file and the threshold in force for `model` (fitted in `data_dir`, else the default)."""
    parsed = load_classes_file(classes_file)
    choice = other_threshold(data_dir, model)
    return ClassifierSpec(parsed.classes, parsed.distractors, choice.value, choice.source, model)


def class_point_id(class_id: str) -> str:
    """Stable point id of a class in the `prompts` collection."""
    return str(uuid.uuid5(_PROMPT_NAMESPACE, class_id))


def distractor_point_id(distractor_id: str) -> str:
    """Stable point id of a distractor in the `prompts` collection (apart from any class's)."""
    return str(uuid.uuid5(_PROMPT_NAMESPACE, f"distractor:{distractor_id}"))


def _ensemble(encoder: TextTower, prompts: tuple[str, ...]) -> np.ndarray:
    """The normalized mean of the prompts' embeddings."""
    mean = encoder.encode_texts(list(prompts)).mean(axis=0)
    result: np.ndarray = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return result


class ZeroShotClassifier:
    """Scores image vectors against class vectors (softmax(logit_scale x cosine)) and distractor vectors."""

    def __init__(
        self,
        classes: list[LandmarkClass],
        class_vectors: np.ndarray,
        logit_scale: float,
        distractors: list[Distractor] | None = None,
        distractor_vectors: np.ndarray | None = None,
        threshold: float = DEFAULT_OTHER_THRESHOLD,
    ) -> None:
        if len(classes) != class_vectors.shape[0]:
            raise ValueError("one class vector per class is needed")
        self.distractors = list(distractors or [])
        dim = class_vectors.shape[1]
        if distractor_vectors is None:
            distractor_vectors = np.zeros((0, dim), dtype=np.float32)
        if distractor_vectors.shape != (len(self.distractors), dim):
            raise ValueError("one distractor vector per distractor is needed, as long as the class vectors")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("the threshold is a confidence, from 0 to 1")
        self.classes = classes
        self.matrix = class_vectors.astype(np.float32)
        self.distractor_matrix = distractor_vectors.astype(np.float32)
        self.logit_scale = float(logit_scale)
        self.threshold = float(threshold)

    @classmethod
    def from_prompts(
        cls,
        classes: list[LandmarkClass],
        encoder: TextTower,
        logit_scale: float,
        distractors: list[Distractor] | None = None,
        threshold: float = DEFAULT_OTHER_THRESHOLD,
    ) -> ZeroShotClassifier:
        """Encode every prompt and average them per class and per distractor (prompt ensembling)."""
        matrix = np.stack([_ensemble(encoder, c.prompts) for c in classes])
        distractors = list(distractors or [])
        rows = [_ensemble(encoder, d.prompts) for d in distractors]
        others = np.stack(rows) if rows else np.zeros((0, matrix.shape[1]), dtype=np.float32)
        return cls(classes, matrix, logit_scale, distractors, others, threshold)

    @classmethod
    def from_spec(cls, spec: ClassifierSpec, encoder: TextTower, logit_scale: float) -> ZeroShotClassifier:
        """The classifier a spec describes (see `classifier_spec`)."""
        return cls.from_prompts(spec.classes, encoder, logit_scale, spec.distractors, spec.threshold)

    def with_threshold(self, threshold: float) -> ZeroShotClassifier:
        """The same vectors with another threshold (what `make eval` compares)."""
        return ZeroShotClassifier(
            self.classes, self.matrix, self.logit_scale, self.distractors, self.distractor_matrix, threshold
        )

    def probabilities(self, image_vectors: np.ndarray) -> np.ndarray:
        """(N, classes) softmax probabilities over the real classes."""
        logits = self.logit_scale * (np.atleast_2d(image_vectors) @ self.matrix.T)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
        return result

    def winning_distractors(self, image_vectors: np.ndarray) -> np.ndarray:
        """(N,) index of the distractor whose cosine beats every class's, or -1 where a class wins."""
        vectors = np.atleast_2d(image_vectors)
        if not self.distractors:
            return np.full(vectors.shape[0], -1)
        best_class = (vectors @ self.matrix.T).max(axis=1)
        scores = vectors @ self.distractor_matrix.T
        best = scores.argmax(axis=1)
        result: np.ndarray = np.where(scores.max(axis=1) > best_class, best, -1)
        return result

    def classify(self, image_vectors: np.ndarray) -> list[Classification]:
        """The answer, the best real class and the top 3 real classes for each image vector."""
        results = []
        rows = self.probabilities(image_vectors)
        for row, winner in zip(rows, self.winning_distractors(image_vectors), strict=True):
            order = np.argsort(-row)[:3]
            top = [ClassScore(self.classes[i], float(row[i])) for i in order]
            if winner >= 0:
                results.append(Classification(top[0], top, OTHER, "distractor", self.distractors[winner]))
            elif top[0].confidence < self.threshold:
                results.append(Classification(top[0], top, OTHER, "low_confidence"))
            else:
                results.append(Classification(top[0], top, top[0].cls))
        return results

    def by_id(self, class_id: str) -> LandmarkClass | None:
        """The class with this id, if any; `other` is the "None of these" answer."""
        if class_id == OTHER.id:
            return OTHER
        return next((c for c in self.classes if c.id == class_id), None)

    def save(
        self, store: VectorStore, meta: dict[str, Any], fingerprint: str, collection: str = PROMPTS
    ) -> None:
        """Write the class and distractor vectors to the `prompts` collection, or another (replacing
        what was there)."""
        store.ensure_collection(collection, meta)
        common = {"fingerprint": fingerprint, "logit_scale": self.logit_scale, "threshold": self.threshold}
        points = [
            PointRecord(
                id=class_point_id(c.id),
                vector=self.matrix[i],
                payload={
                    "label": c.id,
                    "order": i,
                    "name": c.name,
                    "name_ru": c.name_ru,
                    "prompts": list(c.prompts),
                    **common,
                },
            )
            for i, c in enumerate(self.classes)
        ] + [
            PointRecord(
                id=distractor_point_id(d.id),
                vector=self.distractor_matrix[i],
                payload={
                    "kind": "distractor",
                    "label": d.id,
                    "order": i,
                    "prompts": list(d.prompts),
                    **common,
                },
            )
            for i, d in enumerate(self.distractors)
        ]
        wanted = {p.id for p in points}
        stale = [p.id for p in store.scroll(collection) if p.id not in wanted]
        store.delete(collection, stale)
        store.upsert(collection, points)

    @classmethod
    def load(cls, store: VectorStore) -> ZeroShotClassifier | None:
        """The classifier stored in the `prompts` collection, or None when ingest has not run yet."""
        points = [p for p in store.scroll(PROMPTS, with_vectors=True) if p.vector is not None]
        points.sort(key=lambda p: int(p.payload.get("order", 0)))
        class_points = [p for p in points if p.payload.get("kind", "class") == "class"]
        distractor_points = [p for p in points if p.payload.get("kind") == "distractor"]
        if not class_points:
            return None
        classes = [
            LandmarkClass(
                id=str(p.payload["label"]),
                name=str(p.payload.get("name", p.payload["label"])),
                name_ru=str(p.payload.get("name_ru", p.payload.get("name", ""))),
                prompts=tuple(p.payload.get("prompts", ())),
            )
            for p in class_points
        ]
        distractors = [
            Distractor(str(p.payload["label"]), tuple(p.payload.get("prompts", ())))
            for p in distractor_points
        ]
        vectors = np.stack([np.asarray(p.vector, dtype=np.float32) for p in class_points])
        others = np.asarray([p.vector for p in distractor_points], dtype=np.float32).reshape(
            len(distractor_points), vectors.shape[1]
        )
        first = class_points[0].payload
        # Collections stored before distractors existed carry no threshold: they had none (0).
        threshold = float(first.get("threshold", 0.0))
        return cls(classes, vectors, float(first.get("logit_scale", 100.0)), distractors, others, threshold)

    @staticmethod
    def stored_fingerprint(store: VectorStore) -> str | None:
        """The fingerprint the stored class vectors were built from."""
        for point in store.scroll(PROMPTS):
            return str(point.payload.get("fingerprint"))
        return None
