"""Zero-shot classification: class vectors from prompt ensembles, scored with CLIP's logit scale.

A class vector is the normalized mean of its prompts' text embeddings (as in the CLIP paper). The vectors
live in the `prompts` collection so the API scores against exactly what ingest labelled with.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.classes import LandmarkClass
from core.model.towers import TextTower
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
    """The best class, its confidence and the top 3."""

    best: ClassScore
    top3: list[ClassScore]

    def as_payload(self) -> dict[str, Any]:
        """The fields stored with an image point."""
        return {
            "label": self.best.cls.id,
            "confidence": round(self.best.confidence, 6),
            "top3": [{"id": s.cls.id, "confidence": round(s.confidence, 6)} for s in self.top3],
        }


def prompts_fingerprint(classes: list[LandmarkClass], model: str) -> str:
    """A short hash of the classes, prompts and model: stored labels older than it get recomputed."""
    text = json.dumps(
        [[c.id, list(c.prompts)] for c in classes] + [model], ensure_ascii=False, sort_keys=True
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def class_point_id(class_id: str) -> str:
    """Stable point id of a class in the `prompts` collection."""
    return str(uuid.uuid5(_PROMPT_NAMESPACE, class_id))


class ZeroShotClassifier:
    """Scores image vectors against class vectors: softmax(logit_scale x cosine)."""

    def __init__(self, classes: list[LandmarkClass], class_vectors: np.ndarray, logit_scale: float) -> None:
        if len(classes) != class_vectors.shape[0]:
            raise ValueError("one class vector per class is needed")
        self.classes = classes
        self.matrix = class_vectors.astype(np.float32)
        self.logit_scale = float(logit_scale)

    @classmethod
    def from_prompts(
        cls, classes: list[LandmarkClass], encoder: TextTower, logit_scale: float
    ) -> ZeroShotClassifier:
        """Encode every prompt and average them per class (prompt ensembling)."""
        rows = []
        for landmark in classes:
            vectors = encoder.encode_texts(list(landmark.prompts))
            mean = vectors.mean(axis=0)
            rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        return cls(classes, np.stack(rows), logit_scale)

    def probabilities(self, image_vectors: np.ndarray) -> np.ndarray:
        """(N, classes) softmax probabilities."""
        logits = self.logit_scale * (np.atleast_2d(image_vectors) @ self.matrix.T)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
        return result

    def classify(self, image_vectors: np.ndarray) -> list[Classification]:
        """The best class and top 3 for each image vector."""
        results = []
        for row in self.probabilities(image_vectors):
            order = np.argsort(-row)[:3]
            top = [ClassScore(self.classes[i], float(row[i])) for i in order]
            results.append(Classification(best=top[0], top3=top))
        return results

    def by_id(self, class_id: str) -> LandmarkClass | None:
        """The class with this id, if any."""
        return next((c for c in self.classes if c.id == class_id), None)

    def save(
        self, store: VectorStore, meta: dict[str, Any], fingerprint: str, collection: str = PROMPTS
    ) -> None:
        """Write the class vectors to the `prompts` collection, or another (replacing what was there)."""
        store.ensure_collection(collection, meta)
        wanted = {class_point_id(c.id) for c in self.classes}
        stale = [p.id for p in store.scroll(collection) if p.id not in wanted]
        store.delete(collection, stale)
        store.upsert(
            collection,
            [
                PointRecord(
                    id=class_point_id(c.id),
                    vector=self.matrix[i],
                    payload={
                        "label": c.id,
                        "order": i,
                        "name": c.name,
                        "name_ru": c.name_ru,
                        "prompts": list(c.prompts),
                        "fingerprint": fingerprint,
                        "logit_scale": self.logit_scale,
                    },
                )
                for i, c in enumerate(self.classes)
            ],
        )

    @classmethod
    def load(cls, store: VectorStore) -> ZeroShotClassifier | None:
        """The classifier stored in the `prompts` collection, or None when ingest has not run yet."""
        points = [p for p in store.scroll(PROMPTS, with_vectors=True) if p.vector is not None]
        if not points:
            return None
        points.sort(key=lambda p: int(p.payload.get("order", 0)))
        classes = [
            LandmarkClass(
                id=str(p.payload["label"]),
                name=str(p.payload.get("name", p.payload["label"])),
                name_ru=str(p.payload.get("name_ru", p.payload.get("name", ""))),
                prompts=tuple(p.payload.get("prompts", ())),
            )
            for p in points
        ]
        vectors = np.stack([np.asarray(p.vector, dtype=np.float32) for p in points])
        scale = float(points[0].payload.get("logit_scale", 100.0))
        return cls(classes, vectors, scale)

    @staticmethod
    def stored_fingerprint(store: VectorStore) -> str | None:
        """The fingerprint the stored class vectors were built from."""
        for point in store.scroll(PROMPTS):
            return str(point.payload.get("fingerprint"))
        return None
