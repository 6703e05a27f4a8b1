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

from core.settings import Settings
from core.store.base import (
    CELL_FIELD,
    IMAGES,
    LABEL_FIELD,
    CollectionMissing,
    CollectionStats,
    Hit,
    PointRecord,
    StoreUnavailable,
    VectorStore,
    check_meta,
)
from core.store.tuning import StoreTuning

T = TypeVar("T")


def from_settings(settings: Settings) -> ServerStore:
    """The Qdrant server the settings describe: QDRANT_URL and its key (see core/store/__init__.py)."""
    if not settings.qdrant_url:
        raise ValueError("the server store needs QDRANT_URL")
    return ServerStore(
        settings.qdrant_url,
        api_key=settings.qdrant_api_key,
        timeout_s=settings.qdrant_timeout_s,
        hnsw_ef=settings.hnsw_ef,
        indexing_threshold_kb=settings.indexing_threshold_kb,
        tuning=StoreTuning.from_settings(settings),
    )


def _unavailable_on_network_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Turn the client's transport failures into StoreUnavailable (a 503 for the API)."""

    @functools.wraps(method)
    def wrapper(self: ServerStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except (ResponseHandlingException, httpx.TransportError, ConnectionError, TimeoutError) as err:
            raise StoreUnavailable(f"the Qdrant server at {self.url} cannot be reached: {err}") from err
        except UnexpectedResponse as err:
            if err.status_code == 404:  # the collection does not exist (never ingested, or deleted)
                raise CollectionMissing(f"the Qdrant server at {self.url} has no such collection") from err
            if err.status_code in (401, 403):
                raise StoreUnavailable(f"the Qdrant server at {self.url} refused the API key") from err
            if err.status_code is not None and err.status_code >= 500:
                raise StoreUnavailable(f"the Qdrant server at {self.url} failed: {err}") from err
            raise
        except ValueError as err:  # qdrant-client's local mode (the tests) says so this way
            if str(err).startswith("Collection ") and str(err).endswith(" not found"):
                raise CollectionMissing(str(err)) from err
            raise

    return wrapper


class ServerStore(VectorStore):
    """Collections on a Qdrant server; `client` may be injected (tests pass a local-mode client)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        hnsw_ef: int = 256,
        indexing_threshold_kb: int = 10000,
        client: QdrantClient | None = None,
        tuning: StoreTuning | None = None,
    ) -> None:
        self.url = url
        self.hnsw_ef = hnsw_ef
        self.indexing_threshold_kb = indexing_threshold_kb
        self.tuning = tuning or StoreTuning()
        self.client = client or QdrantClient(url=url, api_key=api_key, timeout=int(max(1, timeout_s)))

    @_unavailable_on_network_errors
    def ensure_collection(self, name: str, meta: dict[str, Any], recreate: bool = False) -> None:
        """Create the collection with cosine distance and a keyword index on the label, laid out as the
        tuning says (int8 copy, originals on disk; shards, replicas and write consistency on a cluster)."""
        exists = self.client.collection_exists(name)
        if exists and recreate:
            self.client.delete_collection(name)
            exists = False
        if exists:
            stored = self.collection_meta(name) or {}
            check_meta(name, stored, meta)
            return
        tuning = self.tuning
        vector_tuning = self._tuning_for(name)
        self.client.create_collection(
            name,
            vectors_config=models.VectorParams(
                size=int(meta["dim"]),
                distance=models.Distance.COSINE,
                on_disk=True if vector_tuning.vectors_on_disk else None,
            ),
            hnsw_config=models.HnswConfigDiff(m=tuning.hnsw_m, ef_construct=tuning.hnsw_ef_construct),
            optimizers_config=models.OptimizersConfigDiff(indexing_threshold=self.indexing_threshold_kb),
            quantization_config=_quantization_config(vector_tuning),
            shard_number=tuning.shards,
            replication_factor=tuning.replication_factor,
            write_consistency_factor=tuning.write_consistency,
            metadata=dict(meta),
        )
        self.client.create_payload_index(name, LABEL_FIELD, models.PayloadSchemaType.KEYWORD, wait=True)
        self.client.create_payload_index(name, CELL_FIELD, models.PayloadSchemaType.INTEGER, wait=True)

    def _tuning_for(self, name: str) -> StoreTuning:
        """The image vectors get the configured layout; the few prompt vectors stay plain float32."""
        return self.tuning if name == IMAGES else StoreTuning()

    @_unavailable_on_network_errors
    def collection_meta(self, name: str) -> dict[str, Any] | None:
        """The metadata recorded with the collection."""
        if not self.client.collection_exists(name):
            return None
        try:
            info = self.client.get_collection(name)
        except UnexpectedResponse as err:
            if err.status_code == 404:  # deleted between the two calls
                return None
            raise
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
    def set_payloads(self, name: str, updates: Sequence[tuple[Sequence[str], dict[str, Any]]]) -> None:
        """Merge each update's payload keys into its points: one batch call per 1,000 updates."""
        operations = [
            models.SetPayloadOperation(set_payload=models.SetPayload(payload=payload, points=list(ids)))
            for ids, payload in updates
            if ids
        ]
        for start in range(0, len(operations), 1000):
            self.client.batch_update_points(name, operations[start : start + 1000], wait=True)

    @_unavailable_on_network_errors
    def index_integer_field(self, name: str, field: str) -> None:
        """Index an integer payload field (Qdrant answers an existing index as done)."""
        self.client.create_payload_index(name, field, models.PayloadSchemaType.INTEGER, wait=True)

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
        hnsw_ef: int | None = None,
        cells: Sequence[int] | None = None,
    ) -> list[Hit]:
        """Nearest points by cosine."""
        response = self.client.query_points(
            name,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            limit=limit,
            offset=offset or None,
            query_filter=_filter(label, exclude_id, cells),
            score_threshold=min_score,
            with_payload=True,
            search_params=models.SearchParams(
                hnsw_ef=max(hnsw_ef or self.hnsw_ef, limit + offset),
                exact=exact,
                quantization=_quantization_params(self._tuning_for(name), exact),
            ),
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

    @_unavailable_on_network_errors
    def collection_target(self, name: str) -> str:
        """The collection the alias `name` points to, else `name` itself."""
        for alias in self.client.get_aliases().aliases:
            if alias.alias_name == name:
                return str(alias.collection_name)
        return name

    @_unavailable_on_network_errors
    def switch_aliases(self, targets: dict[str, str]) -> None:
        """One `update_collection_aliases` call: Qdrant applies all its actions atomically.

        A name that is still a collection of its own (built before re-indexing existed) cannot become an
        alias while it exists, so that collection is deleted first: for that first switch only, requests
        in between get "not found" (a 503), never another model's answers."""
        aliases = {a.alias_name for a in self.client.get_aliases().aliases}
        actions: list[Any] = []
        for name, target in targets.items():
            if name in aliases:
                actions.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=name)))
            elif self.client.collection_exists(name):
                self.client.delete_collection(name)
            actions.append(
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(collection_name=target, alias_name=name)
                )
            )
        self.client.update_collection_aliases(change_aliases_operations=actions)

    @_unavailable_on_network_errors
    def drop_collection(self, name: str) -> None:
        """Delete the collection `name` (when it is one, not an alias)."""
        if name in {c.name for c in self.client.get_collections().collections}:
            self.client.delete_collection(name)

    @_unavailable_on_network_errors
    def list_collections(self) -> list[str]:
        """The server's collections."""
        return sorted(c.name for c in self.client.get_collections().collections)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()


def _quantization_config(tuning: StoreTuning) -> models.ScalarQuantization | None:
    """The int8 copy of the vectors, held in RAM, or None."""
    if not tuning.quantized:
        return None
    return models.ScalarQuantization(
        scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=tuning.quantile, always_ram=True
        )
    )


def _quantization_params(tuning: StoreTuning, exact: bool) -> models.QuantizationSearchParams | None:
    """Oversampled int8 candidates re-ranked by the originals; an exact search ignores the int8 copy."""
    if not tuning.quantized:
        return None
    if exact:
        return models.QuantizationSearchParams(ignore=True)
    return models.QuantizationSearchParams(rescore=tuning.rescore, oversampling=tuning.oversampling)


def _filter(
    label: str | None, exclude_id: str | None, cells: Sequence[int] | None = None
) -> models.Filter | None:
    if label is None and exclude_id is None and cells is None:
        return None
    must: list[Any] = []
    must_not: list[Any] = []
    if label is not None:
        must.append(models.FieldCondition(key=LABEL_FIELD, match=models.MatchValue(value=label)))
    if cells is not None:
        must.append(models.FieldCondition(key=CELL_FIELD, match=models.MatchAny(any=[int(c) for c in cells])))
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
