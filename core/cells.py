"""Cells: k-means centroids of the library's photo vectors, which route text queries past HNSW's traps.

Why: a text lies across the modality gap, far from every photo. In a big library the HNSW walk of a few
text queries in a hundred ends in the biggest cluster of photos, which scores just below the right answer
everywhere, and finds none of its 12 (docs/scaling.md). Ranking the centroids by the text, exactly, and
searching only the photos of the few nearest cells (a payload filter on CELL_FIELD: 500 to 1,000 photos
for the default 2) finds those; the walk finds the rest. A text query's answer is the best of both
(search/cells.py).

The integer payload index on CELL_FIELD does a second thing: Qdrant's HNSW build adds links inside each
indexed value's points to the graph (its filterable HNSW), so a restricted search walks the cell's own
links, and the plain walk too reaches more of a text's photos (at a million, text recall@12 at beam 512
went from 0.93-0.95 to 0.98, for walks about 1.5x slower).

Lifecycle:
- `train_cells` (by ingest at its end once the library has CELLS_MIN_PHOTOS photos and the cells are
  missing or were trained on under half of it; by `make cells` at any time) drops the stored centroids,
  trains spherical k-means on a sample, writes every photo's cell, and only then stores the centroids.
  Killed halfway, no centroids are stored: text queries walk HNSW alone, as before, until the next run.
- What a training costs: writing a cell into a stored photo moves the point out of its indexed segment
  (Qdrant copies a point on update), so a training ends by building the HNSW index again, with twice
  the disk meanwhile: about what the first build cost (~9 minutes at a million photos on 2 cores). Hence
  ingest trains rarely, and before its own index build, when the photos it just wrote are not indexed yet.
- Ingest gives every new photo the cell of its nearest centroid as it writes it (`Cells.assign`): free.
- The service reads the centroids at its first text query, and again when they change (search/cells.py).
- Centroids of another model than the images collection's (after `make reindex`) are not used.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from core.store.base import CELL_FIELD, CELLS, IMAGES, CollectionMissing, PointRecord, VectorStore

# About 250 photos a cell: probing 2 cells searches ~500-1,000 photos, whatever the library's size.
# Finer cells find more of a text's photos for the same number searched (docs/scaling.md).
PHOTOS_PER_CELL = 250
# k-means wants 39 to 256 training points per centroid (FAISS warns outside that range).
MIN_SAMPLE_PER_CELL = 39
SAMPLE_PER_CELL = 64
ASSIGN_CHUNK = 50_000  # photos read, assigned and written per step of the second pass
ASSIGN_ROWS = 4096  # photos scored against every centroid at once (4,096 x 4,000 cells = 64 MB)

Progress = Callable[[str, int, int], None]  # (phase, done, total): "training", "assigning", "indexing"


@dataclass(frozen=True)
class Cells:
    """The centroids (unit rows, one per cell) and the meta they were stored with."""

    centroids: np.ndarray
    meta: dict[str, Any]

    @property
    def count(self) -> int:
        """Number of cells."""
        return int(self.centroids.shape[0])

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """The cell of each photo vector: its nearest centroid."""
        vectors = np.asarray(vectors, dtype=np.float32)
        cells = np.empty(len(vectors), dtype=np.int64)
        for start in range(0, len(vectors), ASSIGN_ROWS):  # a bounded score matrix, whatever the count
            cells[start : start + ASSIGN_ROWS] = np.argmax(
                vectors[start : start + ASSIGN_ROWS] @ self.centroids.T, axis=1
            )
        return cells

    def probe(self, vector: np.ndarray, count: int) -> list[int]:
        """The `count` cells whose centroids are nearest to a query vector, nearest first."""
        scores = self.centroids @ np.asarray(vector, dtype=np.float32)
        count = min(count, self.count)
        top = np.argpartition(-scores, count - 1)[:count]
        return [int(c) for c in top[np.argsort(-scores[top])]]

    def save(self, store: VectorStore, images_meta: dict[str, Any], photos: int) -> None:
        """Store the centroids in the CELLS collection, with the images' model and the size trained on."""
        meta: dict[str, Any] = {k: images_meta[k] for k in ("model", "dim", "image_size") if k in images_meta}
        meta |= {
            "cells": self.count,
            "photos": photos,
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        store.drop_collection(CELLS)
        store.ensure_collection(CELLS, meta)
        points = [
            PointRecord(id=cell_point_id(c), vector=self.centroids[c], payload={CELL_FIELD: c})
            for c in range(self.count)
        ]
        for start in range(0, len(points), 1024):
            store.upsert(CELLS, points[start : start + 1024])

    @classmethod
    def load(cls, store: VectorStore) -> Cells | None:
        """The stored centroids, or None when there are none or they belong to another model."""
        meta = store.collection_meta(CELLS)
        images = store.collection_meta(IMAGES)
        if meta is None or images is None or not _same_space(meta, images):
            return None
        points = [p for p in store.scroll(CELLS, with_vectors=True, batch=1024) if p.vector is not None]
        if not points or len(points) != int(meta.get("cells", len(points))):
            return None  # written partly (killed while saving): as good as none
        points.sort(key=lambda p: int(p.payload[CELL_FIELD]))
        return cls(np.stack([np.asarray(p.vector, dtype=np.float32) for p in points]), meta)


@dataclass
class CellsReport:
    """What a training run did."""

    photos: int
    cells: int
    sample: int
    seconds: float
    index_seconds: float  # of `seconds`: building the HNSW index again after the photos moved

    def summary(self) -> str:
        """Human summary."""
        return (
            f"cells: {self.cells} trained on {self.sample} of {self.photos} photos, every photo assigned, "
            f"in {self.seconds:.1f} s ({self.index_seconds:.1f} s of it rebuilding the index)"
        )


def cells_for(photos: int) -> int:
    """The number of cells for a library of this size."""
    return max(1, round(photos / PHOTOS_PER_CELL))


def needs_training(store: VectorStore, min_photos: int) -> bool:
    """Whether ingest should train the cells now: the library has `min_photos` photos (0 = never; and
    enough to train one cell) and the cells are missing, of another model, or trained on at most half of
    today's photos."""
    if min_photos <= 0:
        return False
    photos = store.count(IMAGES)
    if photos < max(min_photos, MIN_SAMPLE_PER_CELL * cells_for(photos)):
        return False
    cells = Cells.load(store)
    return cells is None or int(cells.meta.get("photos", 0)) * 2 <= photos


def train_cells(
    store: VectorStore, cells: int | None = None, progress: Progress | None = None, seed: int = 17
) -> CellsReport:
    """Train the cells of the images collection and assign every photo to one (see the module docstring).

    Raises CollectionMissing when nothing was ingested, ValueError when the library is too small for
    the cells asked."""
    started = time.perf_counter()
    images_meta = store.collection_meta(IMAGES)
    if images_meta is None:
        raise CollectionMissing("there are no photos yet; run `make ingest` first")
    photos = store.count(IMAGES)
    count = cells or cells_for(photos)
    if count < 1 or photos < count * MIN_SAMPLE_PER_CELL:
        raise ValueError(
            f"{count} cells need at least {count * MIN_SAMPLE_PER_CELL} photos to train on; "
            f"the library has {photos}"
        )
    report = progress or _no_progress
    store.drop_collection(CELLS)  # from here on, text queries walk HNSW alone until the new cells are stored
    store.index_integer_field(IMAGES, CELL_FIELD)
    report("training", 0, 0)
    # Point ids are content hashes, so the first photos in id order are a uniform sample of the library.
    _, sample = next(_chunks(store, min(photos, count * SAMPLE_PER_CELL)))
    trained = Cells(_spherical_kmeans(sample, count, seed), {})
    assigned = 0
    for ids, vectors in _chunks(store, ASSIGN_CHUNK):
        cell_of = trained.assign(vectors)
        store.set_payloads(
            IMAGES,
            [
                ([ids[i] for i in np.flatnonzero(cell_of == c)], {CELL_FIELD: int(c)})
                for c in np.unique(cell_of)
            ],
        )
        assigned += len(ids)
        report("assigning", assigned, photos)
    report("indexing", 0, 0)
    indexing = time.perf_counter()
    store.optimize(IMAGES)
    index_seconds = time.perf_counter() - indexing
    trained.save(store, images_meta, assigned)
    return CellsReport(assigned, count, len(sample), time.perf_counter() - started, index_seconds)


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


def cell_point_id(cell: int) -> str:
    """The id of a centroid's point in CELLS."""
    return str(uuid.UUID(int=cell + 1))


def _same_space(cells_meta: dict[str, Any], images_meta: dict[str, Any]) -> bool:
    return all(cells_meta.get(k) == images_meta.get(k) for k in ("model", "dim"))


def _chunks(store: VectorStore, size: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """The stored photos' ids and vectors, `size` at a time, in id order."""
    ids: list[str] = []
    rows: list[np.ndarray] = []
    for point in store.scroll(IMAGES, with_vectors=True, batch=1024):
        if point.vector is None:
            continue
        ids.append(point.id)
        rows.append(point.vector)
        if len(ids) >= size:
            yield ids, np.stack(rows)
            ids, rows = [], []
    if ids:
        yield ids, np.stack(rows)


def _spherical_kmeans(sample: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Unit centroids of `count` clusters of the sample, by cosine (FAISS's k-means, 10 rounds)."""
    import faiss  # imported here: the service loads cells without training them

    kmeans = faiss.Kmeans(sample.shape[1], count, niter=10, spherical=True, seed=seed, verbose=False)
    kmeans.train(np.ascontiguousarray(sample, dtype=np.float32))
    centroids = np.asarray(kmeans.centroids, dtype=np.float32)
    return centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
