"""The ingest pipeline: hash, skip what is known, decode in threads while the model encodes, label, write.

Crash safety: a point is written in one upsert with its complete payload, after its thumbnail, so a run
killed at any moment leaves only complete points, and the next run encodes exactly what is missing.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from core.classes import load_classes
from core.ids import image_point_id, sha256_hex
from core.images import DecodedImage, UnsupportedImage, decode_image, thumbnail_jpeg
from core.model import ClipModel
from core.payload import (
    LABELS_VERSION_KEY,
    ImagePayload,
    ScoredClass,
    label_fields,
    library_file,
    path_fields,
    stored_path,
)
from core.phash import MIN_SIDE as PHASH_MIN_SIDE
from core.phash import fingerprint as photo_fingerprint
from core.settings import Settings
from core.store.base import IMAGES, PROMPTS, PointRecord, VectorStore
from core.thumbnails import remove_thumb, write_thumb
from core.zero_shot import Classification, ZeroShotClassifier, prompts_fingerprint
from ingest.attribution import attribution_for
from ingest.duplicates import check_duplicates
from ingest.files import UnreadableFile, max_file_bytes, read_regular_file
from ingest.scan import scan

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
        }

    def summary(self) -> str:
        """Human summary, one line per fact, then one line per skipped file."""
        lines = [
            f"new: {self.new}   already indexed: {self.already_indexed}   duplicates: {self.duplicates}"
            f"   renamed: {self.renamed}   re-labelled: {self.relabelled}   skipped: {len(self.skipped)}",
            f"time: {self.seconds:.1f} s   {self.images_per_s:.2f} images/s   "
            f"collection now holds {self.total_points} images",
        ]
        if self.pruned:
            lines.append(f"removed {self.pruned} images whose files left the library")
        if self.near_duplicates:
            lines.append(f"near-duplicates found: {self.near_duplicates} (see the Duplicates view)")
        if self.missing:
            lines.append(
                f"{self.missing} indexed images have no file in the library any more (still searchable); "
                "`make ingest ARGS=--prune` removes them"
            )
        lines += [f"  skipped {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


@dataclass
class _Candidate:
    path: Path
    sha256: str
    point_id: str
    size: int


@dataclass
class _Decoded:
    candidate: _Candidate
    image: DecodedImage | None
    thumb: bytes | None
    error: str | None
    phash: tuple[str, ...] = ()


def prepare_classifier(
    settings: Settings, encoder: ClipModel, store: VectorStore
) -> tuple[ZeroShotClassifier, str, bool]:
    """The classifier for the current classes file; rebuilt and stored when prompts or model changed.

    Returns (classifier, fingerprint, changed)."""
    classes = load_classes(settings.classes_file)
    fingerprint = prompts_fingerprint(classes, encoder.identity.model)
    meta = encoder.identity.as_meta()
    store.ensure_collection(PROMPTS, meta)
    if ZeroShotClassifier.stored_fingerprint(store) == fingerprint:
        stored = ZeroShotClassifier.load(store)
        if stored is not None:
            return stored, fingerprint, False
    classifier = ZeroShotClassifier.from_prompts(classes, encoder.text, encoder.logit_scale)
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
) -> IngestReport:
    """Make every new image under `paths` (default: the library) searchable; see the module docstring.

    Over the whole library, images whose files are gone are counted, and removed with `prune`."""
    started = time.perf_counter()
    report = IngestReport()
    meta = encoder.identity.as_meta()
    store.ensure_collection(IMAGES, meta, recreate=recreate)
    if recreate:
        store.ensure_collection(PROMPTS, meta, recreate=True)
    classifier, fingerprint, _ = prepare_classifier(settings, encoder, store)

    scanned = scan(list(paths) if paths else [settings.images_dir])
    report.skipped += [(str(p), reason) for p, reason in scanned.skipped]
    candidates = _hash_files(scanned.files, report, show_progress, max_file_bytes(settings.max_image_pixels))
    collapsed: dict[str, list[Path]] = {}
    todo = _new_candidates(settings, store, candidates, report, collapsed)
    if not paths or [Path(p).resolve() for p in paths] == [settings.images_dir.resolve()]:
        gone = find_missing(settings, store)
        if prune:
            remove_points(settings, store, gone)
            report.pruned = len(gone)
        else:
            report.missing = len(gone)

    _encode_and_write(
        settings, encoder, store, classifier, fingerprint, todo, report, show_progress, on_progress
    )
    report.near_duplicates = check_duplicates(settings, store, [c.point_id for c in todo], collapsed)
    report.relabelled = relabel_stale(store, classifier, fingerprint, show_progress)
    store.optimize(IMAGES)
    report.total_points = store.count(IMAGES)
    report.seconds = time.perf_counter() - started
    return report


def _hash_files(
    files: list[Path], report: IngestReport, show_progress: bool, max_bytes: int
) -> list[_Candidate]:
    """Read and hash every file; unreadable, oversized and empty files are skipped here."""
    candidates = []
    for path in tqdm(files, desc="hashing", unit="file", disable=not show_progress, leave=False):
        try:
            data = read_regular_file(path, max_bytes)
        except UnreadableFile as err:
            report.skipped.append((str(path), err.reason))
            continue
        if not data:
            report.skipped.append((str(path), "empty file"))
            continue
        digest = sha256_hex(data)
        candidates.append(_Candidate(path, digest, image_point_id(digest), len(data)))
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
                store.set_payload(IMAGES, candidate.point_id, path_fields(new_path))
                report.renamed += 1
            elif old_path != new_path:
                collapsed.setdefault(candidate.point_id, []).append(candidate.path)
    return todo


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


def _decode(settings: Settings, candidate: _Candidate, min_side: int) -> _Decoded:
    try:
        data = read_regular_file(candidate.path, max_file_bytes(settings.max_image_pixels))
        if sha256_hex(data) != candidate.sha256:
            # The id comes from the bytes hashed earlier: never store another content under it.
            return _Decoded(candidate, None, None, "changed while being ingested; run ingest again")
        decoded = decode_image(data, settings.max_image_pixels, min_side=max(min_side, PHASH_MIN_SIDE))
        thumb = thumbnail_jpeg(decoded.image, settings.thumb_size)
        return _Decoded(candidate, decoded, thumb, None, tuple(photo_fingerprint(decoded.image).to_stored()))
    except UnsupportedImage as err:
        return _Decoded(candidate, None, None, err.reason)
    except UnreadableFile as err:
        return _Decoded(candidate, None, None, err.reason)
    except Exception as err:  # a bad file must never stop the run
        log.exception("unexpected failure decoding %s", candidate.path)
        return _Decoded(candidate, None, None, f"cannot decode ({type(err).__name__})")


def _decoded_stream(
    settings: Settings, todo: list[_Candidate], min_side: int, prefetch: int
) -> Iterator[_Decoded]:
    """Decode in worker threads, in order, at most `prefetch` ahead of the encoder."""
    workers = max(1, min(4, (os.cpu_count() or 2)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending: deque[Future[_Decoded]] = deque()
        queue = iter(todo)
        for candidate in queue:
            pending.append(pool.submit(_decode, settings, candidate, min_side))
            if len(pending) >= prefetch:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(pool.submit(_decode, settings, nxt, min_side))
            yield result


def _encode_and_write(
    settings: Settings,
    encoder: ClipModel,
    store: VectorStore,
    classifier: ZeroShotClassifier,
    fingerprint: str,
    todo: list[_Candidate],
    report: IngestReport,
    show_progress: bool,
    on_progress: ProgressCallback | None,
) -> None:
    batch_size = settings.encode_batch_size
    min_side = 2 * encoder.identity.image_size
    bar = tqdm(total=len(todo), desc="encoding", unit="img", disable=not show_progress, smoothing=0.1)
    batch: list[_Decoded] = []
    done = 0

    def flush() -> None:
        nonlocal done
        if not batch:
            return
        encode_started = time.perf_counter()
        vectors = encoder.image.encode_images(
            [d.image.image for d in batch if d.image], batch_size=batch_size
        )
        report.encode_seconds += time.perf_counter() - encode_started
        _write_batch(settings, store, classifier, fingerprint, batch, vectors)
        report.new += len(batch)
        done += len(batch)
        bar.update(len(batch))
        if on_progress:
            on_progress("encoding", done, len(todo))
        batch.clear()

    try:
        for item in _decoded_stream(settings, todo, min_side, prefetch=max(4, 3 * batch_size)):
            if item.error is not None:
                report.skipped.append((str(item.candidate.path), item.error))
                bar.update(1)
                done += 1
                continue
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
        flush()
    finally:
        bar.close()


def _write_batch(
    settings: Settings,
    store: VectorStore,
    classifier: ZeroShotClassifier,
    fingerprint: str,
    batch: list[_Decoded],
    vectors: np.ndarray,
) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    points = []
    for item, vector, labels in zip(batch, vectors, classifier.classify(vectors), strict=True):
        candidate, decoded = item.candidate, item.image
        assert decoded is not None and item.thumb is not None
        write_thumb(settings.thumbs_dir, candidate.point_id, item.thumb)
        payload = ImagePayload(
            path=stored_path(candidate.path, settings.images_dir),
            sha256=candidate.sha256,
            bytes=candidate.size,
            width=decoded.width,
            height=decoded.height,
            format=decoded.format,
            attribution=attribution_for(candidate.path),
            ingested_at=now,
            phash=item.phash,
        ).to_stored() | labelled(labels, fingerprint)
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
            store.set_payload(IMAGES, point.id, labelled(labels, fingerprint))
            relabelled += 1
        bar.update(len(points))
    bar.close()
    return relabelled


def labelled(classification: Classification, fingerprint: str) -> dict[str, Any]:
    """The payload fields a classification writes: class, confidence, top 3 and the prompts' version."""
    top3 = [ScoredClass(s.cls.id, round(s.confidence, 6)) for s in classification.top3]
    return label_fields(classification.best.cls.id, classification.best.confidence, top3, fingerprint)
