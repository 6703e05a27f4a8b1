"""The server store: a Qdrant server through `qdrant-client` (the compose stack, and scale-out).

Tested against qdrant-client's local mode (`QdrantClient(":memory:")`), which speaks the same API.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import httpx
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from core.store.base import (
    LABEL_FIELD,
    CollectionStats,
    Hit,
    PointRecord,
    StoreUnavailable,
    VectorStore,
    check_meta,
)

T = TypeVar("T")


def _unavailable_on_network_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Turn the client's transport failures into StoreUnavailable (a 503 for the API)."""

    @functools.wraps(method)
    def wrapper(self: ServerStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except (ResponseHandlingException, httpx.TransportError, ConnectionError, TimeoutError) as err:
            raise StoreUnavailable(f"the Qdrant server at {self.url} cannot be reached: {err}") from err
        except UnexpectedResponse as err:
            if err.status_code in (401, 403):
                raise StoreUnavailable(f"the Qdrant server at {self.url} refused the API key") from err
            if err.status_code is not None and err.status_code >= 500:
                raise StoreUnavailable(f"the Qdrant server at {self.url} failed: {err}") from err
            raise

    return wrapper


class ServerStore(VectorStore):
    """Collections on a Qdrant server; `client` may be injected (tests pass a local-mode client)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        hnsw_ef: int = 128,
        indexing_threshold_kb: int = 10000,
        client: QdrantClient | None = None,
    ) -> None:
        self.url = url
        self.hnsw_ef = hnsw_ef
        self.indexing_threshold_kb = indexing_threshold_kb
        self.client = client or QdrantClient(url=url, api_key=api_key, timeout=int(max(1, timeout_s)))

    @_unavailable_on_network_errors
    def ensure_collection(self, name: str, meta: dict[str, Any], recreate: bool = False) -> None:
        """Create the collection with cosine distance and a keyword index on the label."""
        exists = self.client.collection_exists(name)
        if exists and recreate:
            self.client.delete_collection(name)
            exists = False
        if exists:
            stored = self.collection_meta(name) or {}
            check_meta(name, stored, meta)
            return
        self.client.create_collection(
            name,
            vectors_config=models.VectorParams(size=int(meta["dim"]), distance=models.Distance.COSINE),
            hnsw_config=models.HnswConfigDiff(m=16, ef_construct=128),
            optimizers_config=models.OptimizersConfigDiff(indexing_threshold=self.indexing_threshold_kb),
            metadata=dict(meta),
        )
        self.client.create_payload_index(name, LABEL_FIELD, models.PayloadSchemaType.KEYWORD, wait=True)

    @_unavailable_on_network_errors
    def collection_meta(self, name: str) -> dict[str, Any] | None:
        """The metadata recorded with the collection."""
        if not self.client.collection_exists(name):
            return None
        info = self.client.get_collection(name)
        return dict(info.config.metadata or {})

    @_unavailable_on_network_errors
    def upsert(self, name: str, points: Sequence[PointRecord]) -> None:
        """Upsert with wait=True, so the points are searchable when this returns."""
        if not points:
            return
        structs = [
            models.PointStruct(
                id=p.id, vector=np.asarray(p.vector, dtype=np.float32).tolist(), payload=p.payload
            )
            for p in points
        ]
        self.client.upsert(name, points=structs, wait=True)

    @_unavailable_on_network_errors
    def set_payload(self, name: str, point_id: str, payload: dict[str, Any]) -> None:
        """Merge payload keys into one point."""
        self.client.set_payload(name, payload=payload, points=[point_id], wait=True)

    @_unavailable_on_network_errors
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
    ) -> list[Hit]:
        """Nearest points by cosine."""
        response = self.client.query_points(
            name,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            limit=limit,
            offset=offset or None,
            query_filter=_filter(label, exclude_id),
            score_threshold=min_score,
            with_payload=True,
            search_params=models.SearchParams(hnsw_ef=max(self.hnsw_ef, limit + offset), exact=exact),
        )
        return [
            Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in response.points
        ]

    @_unavailable_on_network_errors
    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[PointRecord]:
        """Points by id; unknown ids are left out."""
        if not ids:
            return []
        records = self.client.retrieve(name, ids=list(ids), with_payload=True, with_vectors=with_vectors)
        return [_record(r, with_vectors) for r in records]

    @_unavailable_on_network_errors
    def count(self, name: str, label: str | None = None) -> int:
        """Exact count, optionally of one label."""
        if not self.client.collection_exists(name):
            return 0
        return int(self.client.count(name, count_filter=_filter(label, None), exact=True).count)

    def scroll(self, name: str, with_vectors: bool = False, batch: int = 256) -> Iterator[PointRecord]:
        """Every point, `batch` at a time."""
        offset: Any = None
        while True:
            records, offset = self._scroll_page(name, offset, with_vectors, batch)
            for record in records:
                yield _record(record, with_vectors)
            if offset is None:
                return

    @_unavailable_on_network_errors
    def _scroll_page(self, name: str, offset: Any, with_vectors: bool, batch: int) -> tuple[list[Any], Any]:
        if not self.client.collection_exists(name):
            return [], None
        return self.client.scroll(
            name, offset=offset, limit=batch, with_payload=True, with_vectors=with_vectors
        )

    @_unavailable_on_network_errors
    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Remove points by id."""
        if ids:
            self.client.delete(name, points_selector=models.PointIdsList(points=list(ids)), wait=True)

    @_unavailable_on_network_errors
    def stats(self, name: str) -> CollectionStats:
        """Points and indexed vectors as the server reports them."""
        if not self.client.collection_exists(name):
            return CollectionStats(points=0, indexed_vectors=0)
        info = self.client.get_collection(name)
        return CollectionStats(
            points=int(info.points_count or 0), indexed_vectors=int(info.indexed_vectors_count or 0)
        )

    def optimize(self, name: str) -> None:
        """The server's optimizer runs by itself in the background; nothing to trigger."""

    @_unavailable_on_network_errors
    def ping(self) -> None:
        """One cheap call that fails when the server is unreachable or refuses the key."""
        self.client.get_collections()

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()


def _filter(label: str | None, exclude_id: str | None) -> models.Filter | None:
    if label is None and exclude_id is None:
        return None
    must: list[Any] = []
    must_not: list[Any] = []
    if label is not None:
        must.append(models.FieldCondition(key=LABEL_FIELD, match=models.MatchValue(value=label)))
    if exclude_id is not None:
        must_not.append(models.HasIdCondition(has_id=[exclude_id]))
    return models.Filter(must=must or None, must_not=must_not or None)


def _record(record: Any, with_vectors: bool) -> PointRecord:
    vector = None
    if with_vectors and record.vector is not None:
        raw = record.vector
        if isinstance(raw, dict):
            raw = raw.get("", next(iter(raw.values())))
        vector = np.asarray(raw, dtype=np.float32)
    return PointRecord(id=str(record.id), payload=dict(record.payload or {}), vector=vector)
