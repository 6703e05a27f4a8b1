"""The embedded store: Qdrant Edge (`qdrant-edge-py`), one in-process shard per collection under data/.

Edge has no aliases: `aliases.json` beside the shards maps a name to the shard that answers for it,
replaced atomically (`os.replace`) and swapped under the store's lock, so a re-index switches models at
once (`switch_aliases`).

Same Rust engine as the Qdrant server (HNSW, payload indexes, WAL). A shard is opened by one process at a
time: a second process gets StoreUnavailable, which the ingest CLI answers by handing its work to the
running service.
"""

from __future__ import annotations

import contextlib
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
    MatchAny,
    MatchValue,
    Memory,
    PayloadSchemaType,
    Point,
    QuantizationSearchParams,
    Query,
    QueryRequest,
    ScalarQuantizationConfig,
    ScalarType,
    ScrollRequest,
    SearchParams,
    UpdateOperation,
)

from core.settings import Settings
from core.store.base import (
    CELL_FIELD,
    IMAGES,
    LABEL_FIELD,
    CollectionMissing,
    CollectionStats,
    Hit,
    PointRecord,
    StoreDamaged,
    StoreUnavailable,
    VectorStore,
    check_meta,
)
from core.store.tuning import StoreTuning


def from_settings(settings: Settings) -> EmbeddedStore:
    """The embedded store the settings describe: its shards under DATA_DIR (see core/store/__init__.py)."""
    return EmbeddedStore(
        settings.shard_dir,
        hnsw_ef=settings.hnsw_ef,
        indexing_threshold_kb=settings.indexing_threshold_kb,
        tuning=StoreTuning.from_settings(settings),
    )


class EmbeddedStore(VectorStore):
    """Qdrant Edge shards in `root`, one folder per collection and a JSON file of meta beside each."""

    def __init__(
        self,
        root: Path,
        hnsw_ef: int = 256,
        indexing_threshold_kb: int = 10000,
        tuning: StoreTuning | None = None,
    ) -> None:
        self.root = Path(root)
        self.hnsw_ef = hnsw_ef
        self.indexing_threshold_kb = indexing_threshold_kb
        self.tuning = tuning or StoreTuning()
        self._shards: dict[str, EdgeShard] = {}  # by the shard's own name (aliases resolved)
        self._lock = threading.RLock()
        self._aliases: dict[str, str] = _read_aliases(self.root / ALIASES_FILE)

    # -- files -------------------------------------------------------------------------------------
    def _shard_dir(self, name: str) -> Path:
        return self.root / self.collection_target(name)

    def _meta_file(self, name: str) -> Path:
        return self.root / f"{self.collection_target(name)}.meta.json"

    def _shard(self, name: str) -> EdgeShard | None:
        with self._lock:
            name = self.collection_target(name)
            shard = self._shards.get(name)
            if shard is not None:
                return shard
            path = self._shard_dir(name)
            if not (path / "edge_config.json").exists():
                if self._meta_file(name).exists():
                    raise StoreDamaged(
                        f"the embedded store's collection '{name}' has its meta file but no shard at {path}"
                        " (deleted?): restore data/qdrant, or rebuild with `make ingest ARGS=--recreate`"
                    )
                return None
            try:
                shard = EdgeShard.load(str(path))
            except Exception as err:  # the engine raises a bare Exception
                raise _open_error(path, err) from err
            self._shards[name] = shard
            return shard

    def _require(self, name: str) -> EdgeShard:
        shard = self._shard(name)
        if shard is None:
            raise CollectionMissing(f"collection '{name}' does not exist yet; run `make ingest` first")
        return shard

    # -- collections -------------------------------------------------------------------------------
    def ensure_collection(self, name: str, meta: dict[str, Any], recreate: bool = False) -> None:
        """Create the shard if missing (or rebuild it with `recreate`), and check its meta."""
        with self._lock:
            if recreate or not (self._shard_dir(name) / "edge_config.json").exists():
                self._drop(name)  # a meta file without its shard (deleted folder) starts afresh too
            stored = self.collection_meta(name)
            if stored is not None and self._shard(name) is not None:
                check_meta(name, stored, meta)
                return
            if self._shard(name) is None:
                config = EdgeConfig(
                    vectors=_vector_params(int(meta["dim"]), self._tuning_for(name)),
                    hnsw_config=HnswIndexConfig(
                        m=self.tuning.hnsw_m,
                        ef_construct=self.tuning.hnsw_ef_construct,
                        full_scan_threshold=10000,
                    ),
                    optimizers=EdgeOptimizersConfig(indexing_threshold=self.indexing_threshold_kb),
                )
                self.root.mkdir(parents=True, exist_ok=True)
                shard = EdgeShard.create(str(self._shard_dir(name)), config)
                shard.update(UpdateOperation.create_field_index(LABEL_FIELD, PayloadSchemaType.Keyword))
                shard.update(UpdateOperation.create_field_index(CELL_FIELD, PayloadSchemaType.Integer))
                shard.flush()
                self._shards[name] = shard
            _write_json_atomic(self._meta_file(name), meta)

    def _tuning_for(self, name: str) -> StoreTuning:
        """The image vectors get the configured layout; the few prompt vectors stay plain float32."""
        return self.tuning if name == IMAGES else StoreTuning()

    def _drop(self, name: str) -> None:
        target = self.collection_target(name)
        if target != name:  # rebuilt under its own name, with no shard left that answered for it
            self._write_aliases({k: v for k, v in self._aliases.items() if k != name})
            self.drop_collection(target)
        self.drop_collection(name)

    def collection_meta(self, name: str) -> dict[str, Any] | None:
        """The meta JSON beside the shard, or None."""
        path = self._meta_file(name)
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON
            raise StoreDamaged(f"the meta file {path} cannot be read: {err}") from err
        if not isinstance(result, dict):
            raise StoreDamaged(f"the meta file {path} is not a JSON object")
        return result

    # -- points ------------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[PointRecord]) -> None:
        """Write points; the WAL makes them durable before this returns."""
        if not points:
            return
        batch = [Point(p.id, np.asarray(p.vector, dtype=np.float32).tolist(), p.payload) for p in points]
        with self._lock:
            self._require(name).update(UpdateOperation.upsert_points(batch))

    def set_payloads(self, name: str, updates: Sequence[tuple[Sequence[str], dict[str, Any]]]) -> None:
        """Merge each update's payload keys into its points, one update each, under one lock."""
        with self._lock:
            shard = self._require(name)
            for point_ids, payload in updates:
                if point_ids:
                    shard.update(UpdateOperation.set_payload(list(point_ids), payload))

    def index_integer_field(self, name: str, field: str) -> None:
        """Index an integer payload field (creating an existing index again is a no-op in Edge)."""
        with self._lock:
            self._require(name).update(UpdateOperation.create_field_index(field, PayloadSchemaType.Integer))

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
        """Nearest points by cosine through the shard's HNSW (or exhaustive below the threshold)."""
        request = QueryRequest(
            limit=limit,
            offset=offset or None,
            query=Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
            with_payload=True,
            filter=_filter(label, exclude_id, cells),
            score_threshold=min_score,
            params=SearchParams(
                hnsw_ef=max(hnsw_ef or self.hnsw_ef, limit + offset),
                exact=exact,
                quantization=_quantization_params(self._tuning_for(name), exact),
            ),
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
            return int(shard.count(CountRequest(exact=True, filter=_filter(label, None, None))))

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
        """Open every existing shard, so a lock held by another process (or a damaged one) shows now.

        A shard already open is checked to still have its folder: deleting data/qdrant under a running
        service is damage, not an empty library."""
        for path in sorted(self.root.glob("*.meta.json")):
            name = path.name.removesuffix(".meta.json")
            self.collection_meta(name)
            self._shard(name)
        with self._lock:
            for name in self._shards:
                if not (self._shard_dir(name) / "edge_config.json").exists():
                    raise StoreDamaged(
                        f"the shard folder of collection '{name}' ({self._shard_dir(name)}) is gone while "
                        "the service runs: restore it, or restart and rebuild with `make ingest ARGS=--recreate`"
                    )

    # -- aliases -----------------------------------------------------------------------------------
    def collection_target(self, name: str) -> str:
        """The shard that answers for `name` (aliases.json), else `name` itself."""
        return self._aliases.get(name, name)

    def switch_aliases(self, targets: dict[str, str]) -> None:
        """Point names at other shards in one atomic write of aliases.json, under the store's lock."""
        with self._lock:
            for target in targets.values():
                if not (self.root / target / "edge_config.json").exists():
                    raise StoreUnavailable(f"cannot switch to collection '{target}': it does not exist")
            self._write_aliases({**self._aliases, **targets})

    def _write_aliases(self, aliases: dict[str, str]) -> None:
        aliases = {name: target for name, target in sorted(aliases.items()) if name != target}
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(self.root / ALIASES_FILE, aliases)
        self._aliases = aliases

    def drop_collection(self, name: str) -> None:
        """Close and delete the shard folder `name` and its meta (aliases are not followed)."""
        with self._lock:
            shard = self._shards.pop(name, None)
            if shard is not None:
                with contextlib.suppress(Exception):  # a damaged shard may fail to close: it goes anyway
                    shard.close()
            shutil.rmtree(self.root / name, ignore_errors=True)
            (self.root / f"{name}.meta.json").unlink(missing_ok=True)

    def list_collections(self) -> list[str]:
        """The shards under the root (each has its meta file)."""
        return sorted(p.name.removesuffix(".meta.json") for p in self.root.glob("*.meta.json"))

    def close(self) -> None:
        """Flush and release every shard (and its WAL lock)."""
        with self._lock:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()


def _vector_params(dim: int, tuning: StoreTuning) -> EdgeVectorParams:
    """Cosine vectors of `dim`; with int8, a quantized copy pinned in RAM and the originals where asked."""
    quantization = (
        ScalarQuantizationConfig(ScalarType.Int8, quantile=tuning.quantile, memory=Memory.Pinned)
        if tuning.quantized
        else None
    )
    return EdgeVectorParams(
        size=dim,
        distance=Distance.Cosine,
        quantization_config=quantization,
        memory=Memory.Cold if tuning.vectors_on_disk else None,
    )


def _quantization_params(tuning: StoreTuning, exact: bool) -> QuantizationSearchParams | None:
    """Search the int8 copy, fetching `oversampling` x the candidates and re-ranking them by the originals.

    An exact search ignores the int8 copy: it is what the cross-check compares HNSW against."""
    if not tuning.quantized:
        return None
    if exact:
        return QuantizationSearchParams(ignore=True)
    return QuantizationSearchParams(rescore=tuning.rescore, oversampling=tuning.oversampling)


def _filter(label: str | None, exclude_id: str | None, cells: Sequence[int] | None) -> Filter | None:
    if label is None and exclude_id is None and cells is None:
        return None
    must: list[Any] = []
    if label is not None:
        must.append(FieldCondition(LABEL_FIELD, match=MatchValue(label)))
    if cells is not None:
        must.append(FieldCondition(CELL_FIELD, match=MatchAny([int(c) for c in cells])))
    must_not: list[Any] | None = [HasIdCondition({exclude_id})] if exclude_id is not None else None
    return Filter(must=must or None, must_not=must_not)


def _record(record: Any, with_vectors: bool) -> PointRecord:
    vector = None
    if with_vectors and record.vector is not None:
        raw = record.vector
        if isinstance(raw, dict):  # named vectors: ours is the default one, named ""
            raw = raw.get("", next(iter(raw.values())))
        vector = np.asarray(raw, dtype=np.float32)
    return PointRecord(id=str(record.id), payload=dict(record.payload or {}), vector=vector)


def _open_error(path: Path, err: Exception) -> StoreUnavailable | StoreDamaged:
    """A lock held by another process is an outage (retry later); anything else is damaged files."""
    text = str(err)
    if "WouldBlock" in text or "lock" in text.lower():
        return StoreUnavailable(
            f"the embedded store at {path} is open in another process (the running service?). "
            "Stop it, or let `make ingest` hand the work to it."
        )
    return StoreDamaged(f"cannot open the embedded store at {path}: {text}")


ALIASES_FILE = "aliases.json"


def _read_aliases(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(k): str(v) for k, v in data.items()}


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
