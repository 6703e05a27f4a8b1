"""The vector store interface both Qdrant adapters implement, and what they share."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

IMAGES = "images"
PROMPTS = "prompts"
CELLS = "cells"  # the k-means centroids text queries are routed by (core/cells.py)
LABEL_FIELD = "label"
CELL_FIELD = "cell"  # an image point's cell: the number of its nearest centroid in CELLS


class StoreError(RuntimeError):
    """Base of store failures."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or opened (server down, shard locked by another process)."""


class CollectionMissing(StoreError):
    """The collection does not exist (yet): nothing was ingested, or it was deleted."""


class StoreDamaged(StoreError):
    """The store's files are there but cannot be used (corrupt meta, shard folder gone, unreadable shard)."""


class CollectionMismatch(StoreError):
    """The collection was built by another model or embedding size; the message says how to rebuild."""


@dataclass
class PointRecord:
    """A point to write or a point read back: id, payload and (optionally) its vector."""

    id: str
    payload: dict[str, Any]
    vector: np.ndarray | None = None


@dataclass
class Hit:
    """One search answer."""

    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class CollectionStats:
    """Size and indexing state of a collection."""

    points: int
    indexed_vectors: int


class VectorStore(abc.ABC):
    """Create/check collections, upsert, query with filter and offset, similar-by-id, retrieve, count,
    scroll, delete. Vectors are unit-length float32; distance is cosine."""

    @abc.abstractmethod
    def ensure_collection(self, name: str, meta: dict[str, Any], recreate: bool = False) -> None:
        """Create the collection for `meta` (which holds at least `dim` and `model`) if missing.

        Raises CollectionMismatch when it exists with another model or dim (unless `recreate`)."""

    @abc.abstractmethod
    def collection_meta(self, name: str) -> dict[str, Any] | None:
        """The meta recorded with the collection, or None when it does not exist."""

    @abc.abstractmethod
    def upsert(self, name: str, points: Sequence[PointRecord]) -> None:
        """Insert or replace points; durable when it returns."""

    def set_payload(self, name: str, point_id: str, payload: dict[str, Any]) -> None:
        """Merge `payload` into one point's payload."""
        self.set_payloads(name, [([point_id], payload)])

    @abc.abstractmethod
    def set_payloads(self, name: str, updates: Sequence[tuple[Sequence[str], dict[str, Any]]]) -> None:
        """Merge each update's payload into each of its points' payloads, in one store call where the
        adapter can (a training writes thousands of these at once)."""

    @abc.abstractmethod
    def index_integer_field(self, name: str, field: str) -> None:
        """Index an integer payload field so filters on it are planned from the index (no-op if it is)."""

    @abc.abstractmethod
    def query(
        self,
        name: str,
        vector: np.ndarray,
        limit: int,
        offset: int = 0,
        label: str | None = None,
        min_score: float | None = None,
        exclude_id: str | None = None,
        exact: bool = False,
        hnsw_ef: int | None = None,
        cells: Sequence[int] | None = None,
    ) -> list[Hit]:
        """Nearest points by cosine, best first, optionally filtered by class label.

        `hnsw_ef`: this search's HNSW beam width, instead of the store's own (HNSW_EF); text queries walk
        wider (HNSW_EF_TEXT, docs/scaling.md). `cells`: only points whose CELL_FIELD is one of these (a
        thousand or so; Qdrant plans the search from the payload index: it scores them all, or walks
        the links it built for each cell, through the int8 copy where there is one)."""

    @abc.abstractmethod
    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[PointRecord]:
        """The points with these ids that exist (unknown ids are left out)."""

    @abc.abstractmethod
    def count(self, name: str, label: str | None = None) -> int:
        """Exact number of points, optionally of one class."""

    @abc.abstractmethod
    def scroll(self, name: str, with_vectors: bool = False, batch: int = 256) -> Iterator[PointRecord]:
        """Every point of the collection, in batches."""

    @abc.abstractmethod
    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Remove points by id."""

    @abc.abstractmethod
    def stats(self, name: str) -> CollectionStats:
        """Points and how many of their vectors an HNSW index covers."""

    @abc.abstractmethod
    def optimize(self, name: str) -> None:
        """Let Qdrant build its indexes now (HNSW above the indexing threshold)."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot answer."""

    def admit(self) -> None:
        """Raise StoreUnavailable at once when calls are known to fail now (an open breaker), so a
        caller spends nothing (encoding a query) on an answer that cannot come; nothing otherwise."""
        return None

    # -- switching collections (re-indexing with another model, restoring) -----------------------------
    @abc.abstractmethod
    def collection_target(self, name: str) -> str:
        """The collection that answers for `name`: itself, or the one an alias points it to."""

    @abc.abstractmethod
    def switch_aliases(self, targets: dict[str, str]) -> None:
        """Make each name answer from its target collection, all at once: a reader sees the old
        collections or the new ones, never a mix. The collections the names answered from stay (drop them
        with `drop_collection` once nothing needs them)."""

    @abc.abstractmethod
    def drop_collection(self, name: str) -> None:
        """Delete the collection called exactly `name` (never followed through an alias) and its points."""

    @abc.abstractmethod
    def list_collections(self) -> list[str]:
        """The names of the collections that exist (not the aliases), sorted."""

    def close(self) -> None:  # noqa: B027 - optional for adapters
        """Release files and connections."""

    def similar(
        self, name: str, point_id: str, limit: int, offset: int = 0, label: str | None = None
    ) -> list[Hit] | None:
        """Points nearest to a stored point (itself excluded), from its stored vector; None if unknown."""
        found = self.retrieve(name, [point_id], with_vectors=True)
        if not found or found[0].vector is None:
            return None
        return self.query(name, found[0].vector, limit, offset=offset, label=label, exclude_id=point_id)

    def label_counts(self, name: str, labels: Sequence[str]) -> dict[str, int]:
        """Exact point count for each class label."""
        return {label: self.count(name, label=label) for label in labels}


def check_meta(name: str, stored: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Raise CollectionMismatch when a collection was built with another model or embedding size."""
    for key in ("model", "dim", "image_size"):
        if key in stored and key in wanted and stored[key] != wanted[key]:
            raise CollectionMismatch(
                f"collection '{name}' was built with {key}={stored[key]!r}, but this service is configured "
                f"with {key}={wanted[key]!r}. Either set CLIP_MODEL back to {stored.get('model')!r}, or "
                f"rebuild the collection with the new model: `make ingest ARGS=--recreate` "
                f"(re-encodes every photo)."
            )
