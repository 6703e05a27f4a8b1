"""The embedded store: Qdrant Edge (`qdrant-edge-py`), one in-process shard per collection under data/.

Same Rust engine as the Qdrant server (HNSW, payload indexes, WAL). A shard is opened by one process at a
time: a second process gets StoreUnavailable, which the ingest CLI answers by handing its work to the
running service.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeOptimizersConfig,
    EdgeShard,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    HasIdCondition,
    HnswIndexConfig,
    MatchValue,
    PayloadSchemaType,
    Point,
    Query,
    QueryRequest,
    ScrollRequest,
    SearchParams,
    UpdateOperation,
)

from core.store.base import (
    LABEL_FIELD,
    CollectionStats,
    Hit,
    PointRecord,
    StoreUnavailable,
    VectorStore,
    check_meta,
)


class EmbeddedStore(VectorStore):
    """Qdrant Edge shards in `root`, one folder per collection and a JSON file of meta beside each."""

    def __init__(self, root: Path, hnsw_ef: int = 128, indexing_threshold_kb: int = 10000) -> None:
        self.root = Path(root)
        self.hnsw_ef = hnsw_ef
        self.indexing_threshold_kb = indexing_threshold_kb
        self._shards: dict[str, EdgeShard] = {}
        self._lock = threading.RLock()

    # -- files -------------------------------------------------------------------------------------
    def _shard_dir(self, name: str) -> Path:
        return self.root / name

    def _meta_file(self, name: str) -> Path:
        return self.root / f"{name}.meta.json"

    def _shard(self, name: str) -> EdgeShard | None:
        with self._lock:
            shard = self._shards.get(name)
            if shard is not None:
                return shard
            path = self._shard_dir(name)
            if not (path / "edge_config.json").exists():
                return None
            try:
                shard = EdgeShard.load(str(path))
            except Exception as err:  # the engine raises a bare Exception
                raise StoreUnavailable(_explain_open_error(path, err)) from err
            self._shards[name] = shard
            return shard

    def _require(self, name: str) -> EdgeShard:
        shard = self._shard(name)
        if shard is None:
            raise StoreUnavailable(f"collection '{name}' does not exist yet; run `make ingest` first")
        return shard

    # -- collections -------------------------------------------------------------------------------
    def ensure_collection(self, name: str, meta: dict[str, Any], recreate: bool = False) -> None:
        """Create the shard if missing (or rebuild it with `recreate`), and check its meta."""
        with self._lock:
            if recreate:
                self._drop(name)
            stored = self.collection_meta(name)
            if stored is not None and self._shard(name) is not None:
                check_meta(name, stored, meta)
                return
            if self._shard(name) is None:
                config = EdgeConfig(
                    vectors=EdgeVectorParams(size=int(meta["dim"]), distance=Distance.Cosine),
                    hnsw_config=HnswIndexConfig(m=16, ef_construct=128, full_scan_threshold=10000),
                    optimizers=EdgeOptimizersConfig(indexing_threshold=self.indexing_threshold_kb),
                )
                self.root.mkdir(parents=True, exist_ok=True)
                shard = EdgeShard.create(str(self._shard_dir(name)), config)
                shard.update(UpdateOperation.create_field_index(LABEL_FIELD, PayloadSchemaType.Keyword))
                shard.flush()
                self._shards[name] = shard
            _write_json_atomic(self._meta_file(name), meta)

    def _drop(self, name: str) -> None:
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self._shard_dir(name), ignore_errors=True)
        self._meta_file(name).unlink(missing_ok=True)

    def collection_meta(self, name: str) -> dict[str, Any] | None:
        """The meta JSON beside the shard, or None."""
        try:
            result: dict[str, Any] = json.loads(self._meta_file(name).read_text(encoding="utf-8"))
            return result
        except FileNotFoundError:
            return None

    # -- points ------------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[PointRecord]) -> None:
        """Write points; the WAL makes them durable before this returns."""
        if not points:
            return
        batch = [Point(p.id, np.asarray(p.vector, dtype=np.float32).tolist(), p.payload) for p in points]
        with self._lock:
            self._require(name).update(UpdateOperation.upsert_points(batch))

    def set_payload(self, name: str, point_id: str, payload: dict[str, Any]) -> None:
        """Merge payload keys into one point."""
        with self._lock:
            self._require(name).update(UpdateOperation.set_payload([point_id], payload))

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
        """Nearest points by cosine through the shard's HNSW (or exhaustive below the threshold)."""
        request = QueryRequest(
            limit=limit,
            offset=offset or None,
            query=Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
            with_payload=True,
            filter=_filter(label, exclude_id),
            score_threshold=min_score,
            params=SearchParams(hnsw_ef=max(self.hnsw_ef, limit + offset), exact=exact),
        )
        with self._lock:
            shard = self._require(name)
            found = shard.query(request)
        return [Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in found]

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[PointRecord]:
        """Points by id; unknown ids are left out."""
        if not ids:
            return []
        with self._lock:
            records = self._require(name).retrieve(list(ids), True, with_vectors)
        return [_record(r, with_vectors) for r in records]

    def count(self, name: str, label: str | None = None) -> int:
        """Exact count, optionally of one label."""
        with self._lock:
            shard = self._shard(name)
            if shard is None:
                return 0
            return int(shard.count(CountRequest(exact=True, filter=_filter(label, None))))

    def scroll(self, name: str, with_vectors: bool = False, batch: int = 256) -> Iterator[PointRecord]:
        """Every point, `batch` at a time."""
        offset = None
        while True:
            with self._lock:
                shard = self._shard(name)
                if shard is None:
                    return
                records, offset = shard.scroll(
                    ScrollRequest(offset=offset, limit=batch, with_payload=True, with_vector=with_vectors)
                )
            for record in records:
                yield _record(record, with_vectors)
            if offset is None:
                return

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Remove points by id."""
        if ids:
            with self._lock:
                self._require(name).update(UpdateOperation.delete_points(list(ids)))

    def stats(self, name: str) -> CollectionStats:
        """Points and indexed vectors of the shard."""
        with self._lock:
            shard = self._shard(name)
            if shard is None:
                return CollectionStats(points=0, indexed_vectors=0)
            info = shard.info()
            return CollectionStats(points=info.points_count, indexed_vectors=info.indexed_vectors_count)

    def optimize(self, name: str) -> None:
        """Build HNSW for segments above the indexing threshold (Edge only does it when asked)."""
        with self._lock:
            shard = self._shard(name)
            if shard is not None:
                shard.optimize()
                shard.flush()

    def ping(self) -> None:
        """Open every existing shard, so a lock held by another process shows now."""
        for path in sorted(self.root.glob("*.meta.json")):
            self._shard(path.name.removesuffix(".meta.json"))

    def close(self) -> None:
        """Flush and release every shard (and its WAL lock)."""
        with self._lock:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()


def _filter(label: str | None, exclude_id: str | None) -> Filter | None:
    if label is None and exclude_id is None:
        return None
    must: list[Any] | None = (
        [FieldCondition(LABEL_FIELD, match=MatchValue(label))] if label is not None else None
    )
    must_not: list[Any] | None = [HasIdCondition({exclude_id})] if exclude_id is not None else None
    return Filter(must=must, must_not=must_not)


def _record(record: Any, with_vectors: bool) -> PointRecord:
    vector = None
    if with_vectors and record.vector is not None:
        raw = record.vector
        if isinstance(raw, dict):  # named vectors: ours is the default one, named ""
            raw = raw.get("", next(iter(raw.values())))
        vector = np.asarray(raw, dtype=np.float32)
    return PointRecord(id=str(record.id), payload=dict(record.payload or {}), vector=vector)


def _explain_open_error(path: Path, err: Exception) -> str:
    text = str(err)
    if "WouldBlock" in text or "lock" in text.lower():
        return (
            f"the embedded store at {path} is open in another process (the running service?). "
            "Stop it, or let `make ingest` hand the work to it."
        )
    return f"cannot open the embedded store at {path}: {text}"


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
