"""The ingest pipeline: hash, skip what is known, decode in threads while the model encodes, label, write.

Crash safety: a point is written in one upsert with its complete payload, after its thumbnail, so a run
killed at any moment leaves only complete points, and the next run encodes exactly what is missing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from core.cells import Cells, needs_training, train_cells
from core.ids import image_point_id, sha256_hex
from core.images import DecodedImage
from core.model import ClipModel
from core.payload import (
    LABELS_VERSION_KEY,
    ImagePayload,
    library_file,
    path_fields,
    stored_path,
)
from core.phash import MIN_SIDE as PHASH_MIN_SIDE
from core.settings import Settings
from core.store.base import CELL_FIELD, CELLS, IMAGES, PROMPTS, PointRecord, StoreError, VectorStore
from core.thumbnails import remove_thumb, write_thumb
from core.zero_shot import ZeroShotClassifier, classifier_spec
from ingest.attribution import attribution_for
from ingest.decode_workers import DecodeOptions, WorkerPlan, decoded_in_order, plan_workers
from ingest.device_feed import DeviceFeed, device_batch_size, feed_for_clip, free_device_bytes
from ingest.duplicates import check_duplicates
from ingest.files import UnreadableFile, max_file_bytes, read_with_state
from ingest.parts import Part
from ingest.scan import scan
from ingest.undecodable import Undecodable

log = logging.getLogger(__name__)
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class IngestReport:
    """What a run did: the summary printed at the end and returned by the service."""

    new: int = 0
    already_indexed: int = 0
    duplicates: int = 0
    renamed: int = 0
    relabelled: int = 0
    missing: int = 0
    pruned: int = 0
    near_duplicates: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    encode_seconds: float = 0.0
    total_points: int = 0
    cells: int = 0  # cells trained at the end of this run (core/cells.py); 0 = none trained

    @property
    def images_per_s(self) -> float:
        """New images per second of wall time."""
        return self.new / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "new": self.new,
            "already_indexed": self.already_indexed,
            "duplicates": self.duplicates,
            "renamed": self.renamed,
            "relabelled": self.relabelled,
            "missing": self.missing,
            "pruned": self.pruned,
            "near_duplicates": self.near_duplicates,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_s, 3),
            "total_points": self.total_points,
            "cells": self.cells,
        }

    def summary(self) -> str:
        """Human summary, one line per fact, then one line per skipped file."""
        lines = [
            f"new: {self.new}   already indexed: {self.already_indexed}   duplicates: {self.duplicates}"
            f"   renamed: {self.renamed}   re-labelled: {self.relabelled}   skipped: {len(self.skipped)}",
            f"time: {self.seconds:.1f} s   {self.images_per_s:.2f} images/s   "
            f"collection now holds {images(self.total_points)}",
        ]
        if self.pruned:
            lines.append(f"removed {images(self.pruned)} whose files left the library")
        if self.near_duplicates:
            lines.append(f"near-duplicates found: {self.near_duplicates} (see the Duplicates view)")
        if self.cells:
            lines.append(f"text search cells trained: {self.cells:,} (core/cells.py)")
        if self.missing:
            lines.append(
                f"{images(self.missing)} indexed {'has' if self.missing == 1 else 'have'} no file in the "
                "library any more (still searchable); `make ingest ARGS=--prune` removes "
                f"{'it' if self.missing == 1 else 'them'}"
            )
        lines += [f"  skipped {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


def images(n: int) -> str:
    """'1 image', '2 images'."""
    return f"{n:,} image" if n == 1 else f"{n:,} images"


@dataclass
class _Candidate:
    path: Path
    sha256: str
    point_id: str
    size: int
    mtime_ns: int


@dataclass
class _Decoded:
    candidate: _Candidate
    image: DecodedImage | None
    thumb: bytes | None
    error: str | None
    pixels: np.ndarray | None = None  # CLIP's uint8 input, for the GPU path
    phash: tuple[str, ...] = ()


def prepare_classifier(
    settings: Settings, encoder: ClipModel, store: VectorStore
) -> tuple[ZeroShotClassifier, str, bool]:
    """The classifier for the current classes file and "none of these" threshold; rebuilt and stored when
    prompts, distractors, threshold or model changed.

    Returns (classifier, fingerprint, changed)."""
    spec = classifier_spec(settings.classes_file, settings.data_dir, encoder.identity.model)
    fingerprint = spec.fingerprint()
    meta = encoder.identity.as_meta()
    store.ensure_collection(PROMPTS, meta)
    if ZeroShotClassifier.stored_fingerprint(store) == fingerprint:
        stored = ZeroShotClassifier.load(store)
        if stored is not None:
            return stored, fingerprint, False
    classifier = ZeroShotClassifier.from_spec(spec, encoder.text, encoder.logit_scale)
    classifier.save(store, meta, fingerprint)
    return classifier, fingerprint, True


def run_ingest(
    settings: Settings,
    encoder: ClipModel,
    store: VectorStore,
    paths: Iterable[Path] | None = None,
    recreate: bool = False,
    show_progress: bool = True,
    on_progress: ProgressCallback | None = None,
    prune: bool = False,
    part: Part | None = None,
) -> IngestReport:
    """Make every new image under `paths` (default: the library) searchable; see the module docstring.

    Over the whole library, images whose files are gone are counted, and removed with `prune`. With
    `part`, only the photos of that share of the library are looked at (ingest/parts.py)."""
    started = time.perf_counter()
    report = IngestReport()
    meta = encoder.identity.as_meta()
    store.ensure_collection(IMAGES, meta, recreate=recreate)
    if recreate:
        store.ensure_collection(PROMPTS, meta, recreate=True)
        store.drop_collection(CELLS)  # the centroids of the photos that were dropped
    classifier, fingerprint, _ = prepare_classifier(settings, encoder, store)
    derived = VectorFields(classifier, fingerprint, Cells.load(store))

    scanned = scan(list(paths) if paths else [settings.images_dir], library=settings.images_dir)
    report.skipped += [(str(p), reason) for p, reason in scanned.skipped]
    candidates = _hash_files(scanned.files, report, show_progress, max_file_bytes(settings.max_image_pixels))
    if part is not None:
        candidates = [c for c in candidates if part.holds(c.sha256)]
    collapsed: dict[str, list[Path]] = {}
    todo = _new_candidates(settings, store, candidates, report, collapsed)
    undecodable = Undecodable(settings.data_dir)
    todo = _not_known_bad(todo, undecodable, report)
    whole_library = not paths or [Path(p).resolve() for p in paths] == [settings.images_dir.resolve()]
    if whole_library and part is None:
        gone = find_missing(settings, store)
        if prune:
            remove_points(settings, store, gone)
            report.pruned = len(gone)
        else:
            report.missing = len(gone)

    try:
        _encode_and_write(
            settings,
            encoder,
            store,
            derived,
            todo,
            report,
            show_progress,
            on_progress,
            undecodable,
        )
    finally:
        undecodable.save()
    report.near_duplicates = check_duplicates(settings, store, [c.point_id for c in todo], collapsed)
    report.relabelled = relabel_stale(store, classifier, fingerprint, show_progress)
    # Before the index build: in the embedded store the photos this run wrote are not indexed yet, so
    # writing their cells moves nothing (a server indexes in the background). Parts run side by side on
    # several machines: the cells are trained by a whole-library run.
    if part is None and needs_training(store, settings.cells_min_photos):
        report.cells = _train_cells(store, show_progress, on_progress)
    store.optimize(IMAGES)
    report.total_points = store.count(IMAGES)
    report.seconds = time.perf_counter() - started
    return report


def _train_cells(store: VectorStore, show_progress: bool, on_progress: ProgressCallback | None) -> int:
    """Train the text queries' cells now (core/cells.py); the number of cells."""
    log.info("training the text search's cells (core/cells.py)")
    bar = tqdm(desc="cells", unit="img", disable=not show_progress)

    def progress(phase: str, done: int, total: int) -> None:
        bar.set_description(f"cells: {phase}")
        bar.total = total or None  # the photos, while they are assigned; none for the other phases
        bar.update(done - bar.n)
        if on_progress:
            on_progress(f"cells: {phase}", done, total)

    try:
        trained = train_cells(store, progress=progress)
    except (StoreError, ValueError) as err:  # the photos are in; text search walks alone until `make cells`
        log.error("the text search's cells could not be trained (`make cells` tries again): %s", err)
        return 0
    finally:
        bar.close()
    log.info("%s", trained.summary())
    return trained.cells


def _hash_files(
    files: list[Path], report: IngestReport, show_progress: bool, max_bytes: int
) -> list[_Candidate]:
    """Read and hash every file; unreadable, oversized and empty files are skipped here."""
    candidates = []
    for path in tqdm(files, desc="hashing", unit="file", disable=not show_progress, leave=False):
        try:
            data, state = read_with_state(path, max_bytes)
        except UnreadableFile as err:
            report.skipped.append((str(path), err.reason))
            continue
        if not data:
            report.skipped.append((str(path), "empty file"))
            continue
        digest = sha256_hex(data)
        candidates.append(_Candidate(path, digest, image_point_id(digest), len(data), state.st_mtime_ns))
    return candidates


def _new_candidates(
    settings: Settings,
    store: VectorStore,
    candidates: list[_Candidate],
    report: IngestReport,
    collapsed: dict[str, list[Path]],
) -> list[_Candidate]:
    """Drop what is already indexed (fixing the path of renamed files) and in-run duplicates; the paths
    of byte-identical files that collapse into one point are added to `collapsed`."""
    unique: dict[str, _Candidate] = {}
    for candidate in candidates:
        if candidate.point_id in unique:
            report.duplicates += 1
            collapsed.setdefault(candidate.point_id, []).append(candidate.path)
        else:
            unique[candidate.point_id] = candidate
    todo = []
    items = list(unique.values())
    for start in range(0, len(items), 256):
        chunk = items[start : start + 256]
        known = {p.id: p for p in store.retrieve(IMAGES, [c.point_id for c in chunk])}
        for candidate in chunk:
            existing = known.get(candidate.point_id)
            if existing is None:
                todo.append(candidate)
                continue
            report.already_indexed += 1
            old_path = ImagePayload.from_stored(existing.payload).path
            new_path = stored_path(candidate.path, settings.images_dir)
            if old_path != new_path and not library_file(old_path, settings.images_dir).exists():
                fields = path_fields(new_path, candidate.size, candidate.mtime_ns)
                store.set_payload(IMAGES, candidate.point_id, fields)
                report.renamed += 1
            elif old_path != new_path:
                collapsed.setdefault(candidate.point_id, []).append(candidate.path)
    return todo


def _not_known_bad(
    todo: list[_Candidate], undecodable: Undecodable, report: IngestReport
) -> list[_Candidate]:
    """Drop files whose exact bytes failed to decode in an earlier run (skipped, with that reason)."""
    kept = []
    for candidate in todo:
        reason = undecodable.reason(candidate.sha256)
        if reason is None:
            kept.append(candidate)
        else:
            report.skipped.append((str(candidate.path), f"{reason} (as in an earlier run)"))
    return kept


def find_missing(settings: Settings, store: VectorStore) -> list[str]:
    """Ids of indexed images whose file is no longer where the payload says."""
    return [
        point.id
        for point in store.scroll(IMAGES)
        if not library_file(ImagePayload.from_stored(point.payload).path, settings.images_dir).is_file()
    ]


def remove_points(settings: Settings, store: VectorStore, ids: list[str]) -> None:
    """Delete images from the collection, and their thumbnails."""
    for start in range(0, len(ids), 256):
        store.delete(IMAGES, ids[start : start + 256])
    for point_id in ids:
        remove_thumb(settings.thumbs_dir, point_id)


def _decoded_stream(
    settings: Settings,
    todo: list[_Candidate],
    min_side: int,
    prefetch: int,
    plan: WorkerPlan,
    clip_size: int | None = None,
) -> Iterator[_Decoded]:
    """Decode in worker processes or threads (ingest/decode_workers.py), in order, at most `prefetch` ahead."""
    # The perceptual hash (near-duplicates) needs a few hundred pixels a side, whatever the model needs.
    options = DecodeOptions(
        settings.max_image_pixels, max(min_side, PHASH_MIN_SIDE), settings.thumb_size, clip_size
    )
    for candidate, done in decoded_in_order(todo, lambda c: (c.path, c.sha256), options, plan, prefetch):
        yield _Decoded(candidate, done.image, done.thumb, done.error, done.pixels, done.phash)


def _device_feed(settings: Settings, encoder: ClipModel) -> DeviceFeed | None:
    """On CUDA, the image tower fed through pinned memory with one batch in flight; None elsewhere."""
    if not encoder.device.startswith("cuda"):
        return None
    from core.model import model_thread

    batch = device_batch_size(encoder.device, settings.encode_batch_size, free_device_bytes(encoder.device))
    modules: Any = encoder.torch_module()  # sentence-transformers: [0] holds the CLIP model
    module = modules[0]
    clip = module.model if hasattr(module, "model") else module.auto_model
    return feed_for_clip(clip, module.processor, encoder.device, batch, run=model_thread().call)


def _encode_and_write(
    settings: Settings,
    encoder: ClipModel,
    store: VectorStore,
    derived: VectorFields,
    todo: list[_Candidate],
    report: IngestReport,
    show_progress: bool,
    on_progress: ProgressCallback | None,
    undecodable: Undecodable,
) -> None:
    feed = _device_feed(settings, encoder)
    batch_size = feed.max_batch if feed is not None else settings.encode_batch_size
    # Decoded (in draft mode) large enough for the model and for the thumbnail, both cut from it.
    min_side = max(2 * encoder.identity.image_size, settings.thumb_size)
    plan = plan_workers(settings.decode_workers, encoder.device, os.cpu_count() or 1)
    bar = tqdm(total=len(todo), desc="encoding", unit="img", disable=not show_progress, smoothing=0.1)
    done = 0
    total = len(todo)  # less every file that fails to decode: the bar counts what gets indexed

    def batches() -> Iterator[list[_Decoded]]:
        nonlocal total
        batch: list[_Decoded] = []
        clip_size = feed.spec.size if feed is not None else None
        stream = _decoded_stream(settings, todo, min_side, max(4, 3 * batch_size), plan, clip_size)
        for item in stream:
            if item.error is not None:
                report.skipped.append((str(item.candidate.path), item.error))
                if not item.error.startswith("changed while"):
                    undecodable.remember(item.candidate.sha256, item.error)
                total -= 1
                bar.total = total
                bar.refresh()
                continue
            batch.append(item)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def encoded() -> Iterator[tuple[list[_Decoded], np.ndarray]]:
        if feed is not None:  # the device computes a batch while the one before is written
            yield from feed.encode_batches(
                (b, [d.pixels for d in b if d.pixels is not None]) for b in batches()
            )
            return
        for batch in batches():
            started = time.perf_counter()
            images = [d.image.image for d in batch if d.image]
            # Indexing yields to queries: a text search waits for at most one slice of this batch.
            vectors = encoder.image.encode_images(images, batch_size=batch_size, background=True)
            report.encode_seconds += time.perf_counter() - started
            yield batch, vectors

    try:
        for batch, vectors in encoded():
            _write_batch(settings, store, derived, batch, vectors)
            report.new += len(batch)
            done += len(batch)
            bar.update(len(batch))
            if on_progress:
                on_progress("encoding", done, total)
    finally:
        bar.close()


@dataclass(frozen=True)
class VectorFields:
    """The payload fields a photo gets from its vector: its class labels (and the fingerprint of the
    prompts they came from), and its cell while the library has cells (core/cells.py)."""

    classifier: ZeroShotClassifier
    fingerprint: str
    cells: Cells | None

    def fields(self, vectors: np.ndarray) -> list[dict[str, Any]]:
        """One dict of fields per vector."""
        labelled = [labels.payload_fields(self.fingerprint) for labels in self.classifier.classify(vectors)]
        if self.cells is None:
            return labelled
        return [f | {CELL_FIELD: int(c)} for f, c in zip(labelled, self.cells.assign(vectors), strict=True)]


def _write_batch(
    settings: Settings,
    store: VectorStore,
    derived: VectorFields,
    batch: list[_Decoded],
    vectors: np.ndarray,
) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    points = []
    for item, vector, fields in zip(batch, vectors, derived.fields(vectors), strict=True):
        candidate, decoded = item.candidate, item.image
        assert decoded is not None and item.thumb is not None
        write_thumb(settings.thumbs_dir, candidate.point_id, item.thumb)
        payload = (
            ImagePayload(
                path=stored_path(candidate.path, settings.images_dir),
                sha256=candidate.sha256,
                bytes=candidate.size,
                mtime_ns=candidate.mtime_ns,
                width=decoded.width,
                height=decoded.height,
                format=decoded.format,
                attribution=attribution_for(candidate.path),
                ingested_at=now,
                phash=item.phash,
            ).to_stored()
            | fields
        )
        points.append(PointRecord(id=candidate.point_id, vector=vector, payload=payload))
    store.upsert(IMAGES, points)


def relabel_stale(
    store: VectorStore, classifier: ZeroShotClassifier, fingerprint: str, show_progress: bool = False
) -> int:
    """Recompute labels of points labelled with older prompts, from their stored vectors (no encoding)."""
    stale_ids = [p.id for p in store.scroll(IMAGES) if p.payload.get(LABELS_VERSION_KEY) != fingerprint]
    relabelled = 0
    bar = tqdm(
        total=len(stale_ids), desc="re-labelling", unit="img", disable=not show_progress or not stale_ids
    )
    for start in range(0, len(stale_ids), 256):
        points = [
            p for p in store.retrieve(IMAGES, stale_ids[start : start + 256], True) if p.vector is not None
        ]
        if not points:
            continue
        vectors = np.stack([p.vector for p in points if p.vector is not None])
        for point, labels in zip(points, classifier.classify(vectors), strict=True):
            store.set_payload(IMAGES, point.id, labels.payload_fields(fingerprint))
            relabelled += 1
        bar.update(len(points))
    bar.close()
    return relabelled
