"""The eval's own photos: one embedded shard per dataset and precision under `data/eval/shards/`, never the
user's library, filled so that nothing is encoded twice.

A photo's point id is its content hash (`core/ids.py`), so a photo already in the library takes the
library's stored vector (for the precision the library was built with; the library records no precision,
so that is the configured one), one the eval encoded before takes its own stored vector, and only the rest
is decoded (in threads, as ingest decodes) and encoded, behind a progress bar. Once filled the shard holds
exactly this run's photos, so the product's search over it ranks this dataset and nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from core.ids import image_point_id, sha256_hex
from core.images import DecodedImage, UnsupportedImage, decode_image
from core.model import ClipModel
from core.payload import ImagePayload
from core.settings import Settings
from core.store import IMAGES, CollectionMismatch, PointRecord, StoreError, VectorStore
from core.store.base import check_meta
from core.store.embedded import EmbeddedStore

log = logging.getLogger(__name__)

_BATCH = 256


@dataclass(frozen=True)
class EvalPhoto:
    """A photo the eval measures: its key (how the dataset names it) and its file."""

    key: str
    path: Path


@dataclass
class FillReport:
    """Where each photo's vector came from, and what it cost."""

    photos: int = 0
    from_library: int = 0
    from_eval: int = 0
    encoded: int = 0
    duplicates: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    encode_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report's form (skipped files by key, with the reason)."""
        return {
            "photos": self.photos,
            "from_library": self.from_library,
            "from_eval_cache": self.from_eval,
            "encoded": self.encoded,
            "duplicates": self.duplicates,
            "skipped": [{"photo": k, "reason": r} for k, r in self.skipped],
            "encode_seconds": round(self.encode_seconds, 3),
        }


@dataclass
class FilledSet:
    """The shard and, for each photo that made it in, its point id (in the order given)."""

    store: VectorStore
    ids: dict[str, str]
    report: FillReport

    def vectors(self, keys: Sequence[str]) -> np.ndarray:
        """The stored vectors of these photos, in this order."""
        wanted = [self.ids[k] for k in keys]
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(wanted), _BATCH):
            for point in self.store.retrieve(IMAGES, wanted[start : start + _BATCH], with_vectors=True):
                if point.vector is not None:
                    found[point.id] = np.asarray(point.vector, dtype=np.float32)
        return np.stack([found[i] for i in wanted]) if wanted else np.zeros((0, 0), dtype=np.float32)


def shards_root(data_dir: Path) -> Path:
    """Where the eval's shards live: `<DATA_DIR>/eval/shards`."""
    return Path(data_dir) / "eval" / "shards"


def open_eval_store(settings: Settings, dataset: str, encoder: ClipModel) -> VectorStore:
    """The eval shard of one dataset at the encoder's precision, rebuilt when the model changed."""
    store = EmbeddedStore(
        shards_root(settings.data_dir) / f"{dataset}-{encoder.precision}",
        hnsw_ef=settings.hnsw_ef,
        indexing_threshold_kb=settings.indexing_threshold_kb,
    )
    meta = {**encoder.identity.as_meta(), "precision": encoder.precision, "eval": dataset}
    stored = store.collection_meta(IMAGES)
    stale = stored is not None and stored.get("precision") != encoder.precision
    try:
        store.ensure_collection(IMAGES, meta, recreate=stale)
    except CollectionMismatch:
        store.ensure_collection(IMAGES, meta, recreate=True)
    return store


def library_vectors(library: VectorStore | None, encoder: ClipModel, ids: Sequence[str]) -> dict[str, Any]:
    """The library's stored vectors for these point ids (none when its model differs or it is away)."""
    if library is None:
        return {}
    try:
        stored = library.collection_meta(IMAGES)
        if stored is None:
            return {}
        check_meta(IMAGES, stored, encoder.identity.as_meta())
        found: dict[str, Any] = {}
        for start in range(0, len(ids), _BATCH):
            for point in library.retrieve(IMAGES, list(ids[start : start + _BATCH]), with_vectors=True):
                if point.vector is not None:
                    found[point.id] = point.vector
        return found
    except (StoreError, CollectionMismatch) as err:
        log.warning("library vectors not used: %s", err)
        return {}


@dataclass
class _Todo:
    key: str
    path: Path
    size: int
    sha256: str
    point_id: str


def _decode(item: _Todo, settings: Settings, min_side: int) -> DecodedImage | str:
    try:
        data = item.path.read_bytes()
        if sha256_hex(data) != item.sha256:
            return "changed while being measured; run the eval again"
        return decode_image(data, settings.max_image_pixels, min_side=min_side)
    except OSError as err:
        return f"cannot read ({err.strerror or type(err).__name__})"
    except UnsupportedImage as err:
        return err.reason
    except Exception as err:  # a bad file must never stop the run
        return f"cannot decode ({type(err).__name__})"


def fill(
    settings: Settings,
    encoder: ClipModel,
    store: VectorStore,
    photos: Sequence[EvalPhoto],
    library: VectorStore | None,
    desc: str,
    show_progress: bool = True,
) -> FilledSet:
    """Make the shard hold exactly `photos` (see the module docstring); `library` None: borrow nothing."""
    report = FillReport()
    ids: dict[str, str] = {}
    todo: dict[str, _Todo] = {}
    bar = tqdm(photos, desc=f"{desc}: hashing", unit="file", disable=not show_progress, leave=False)
    for photo in bar:
        try:
            data = photo.path.read_bytes()
        except OSError as err:
            report.skipped.append((photo.key, f"cannot read ({err.strerror or type(err).__name__})"))
            continue
        if not data:
            report.skipped.append((photo.key, "empty file"))
            continue
        digest = sha256_hex(data)
        point_id = image_point_id(digest)
        if point_id in todo:
            report.duplicates += 1
        ids[photo.key] = point_id
        todo.setdefault(point_id, _Todo(photo.key, photo.path, len(data), digest, point_id))
    unique = list(todo)
    have = {
        p.id
        for start in range(0, len(unique), _BATCH)
        for p in store.retrieve(IMAGES, unique[start : start + _BATCH])
    }
    report.from_eval = len(have)
    missing = [pid for pid in unique if pid not in have]
    borrowed = library_vectors(library, encoder, missing)
    if borrowed:
        store.upsert(IMAGES, [_record(todo[pid], np.asarray(borrowed[pid]), None) for pid in borrowed])
    report.from_library = len(borrowed)
    failed = _encode(
        settings,
        encoder,
        store,
        [todo[pid] for pid in missing if pid not in borrowed],
        report,
        desc,
        show_progress,
    )
    for key in [k for k, pid in ids.items() if pid in failed]:
        report.skipped.append((key, failed[ids.pop(key)]))
    wanted = set(ids.values())
    stale = [p.id for p in store.scroll(IMAGES) if p.id not in wanted]
    for start in range(0, len(stale), _BATCH):
        store.delete(IMAGES, stale[start : start + _BATCH])
    report.photos = len(ids)
    return FilledSet(store, ids, report)


def _record(item: _Todo, vector: np.ndarray, decoded: DecodedImage | None) -> PointRecord:
    payload = ImagePayload(
        path=item.key,
        sha256=item.sha256,
        bytes=item.size,
        width=decoded.width if decoded else None,
        height=decoded.height if decoded else None,
        format=decoded.format if decoded else None,
    )
    return PointRecord(
        id=item.point_id, vector=np.asarray(vector, dtype=np.float32), payload=payload.to_stored()
    )


def _encode(
    settings: Settings,
    encoder: ClipModel,
    store: VectorStore,
    items: list[_Todo],
    report: FillReport,
    desc: str,
    show_progress: bool,
) -> dict[str, str]:
    """Decode (threads, one batch ahead) and encode the photos; returns {point id: reason} of failures."""
    failed: dict[str, str] = {}
    if not items:
        return failed
    size = settings.encode_batch_size
    min_side = 2 * encoder.identity.image_size
    batches = [items[i : i + size] for i in range(0, len(items), size)]
    bar = tqdm(total=len(items), desc=f"{desc}: encoding", unit="img", disable=not show_progress)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="eval-decode") as pool:

        def submit(batch: list[_Todo]) -> list[Future[DecodedImage | str]]:
            return [pool.submit(_decode, item, settings, min_side) for item in batch]

        # One batch decodes while the previous one encodes; no more is held in memory.
        ahead = submit(batches[0])
        for n, batch in enumerate(batches):
            current, ahead = ahead, submit(batches[n + 1]) if n + 1 < len(batches) else []
            decoded = [f.result() for f in current]
            good = [(i, d) for i, d in zip(batch, decoded, strict=True) if isinstance(d, DecodedImage)]
            failed.update({i.point_id: d for i, d in zip(batch, decoded, strict=True) if isinstance(d, str)})
            if good:
                started = time.perf_counter()
                vectors = encoder.image.encode_images([d.image for _, d in good], batch_size=size)
                report.encode_seconds += time.perf_counter() - started
                store.upsert(IMAGES, [_record(i, v, d) for (i, d), v in zip(good, vectors, strict=True)])
                report.encoded += len(good)
            bar.update(len(batch))
    bar.close()
    return failed
