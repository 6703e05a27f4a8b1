"""Near-duplicates: groups of the same photo (re-encoded, resized, centre-cropped, recoloured).

The rule, from measurements on real sample photos (`python -m bench.dedup_calibration`, README):

* CLIP only proposes: a photo's candidates are its NEIGHBOURS nearest stored vectors through the HNSW
  index, so the work per photo is one index search, never a pass over all pairs. No CLIP threshold is
  needed (the tests' CLIP has random weights and ViT-L/14's bars are not measured here).
* The perceptual hash decides: two photos are the same photo when the crop-aware distance of their
  256-bit hashes (`core/phash.py`) is at most MAX_BITS, halfway between what was measured: every edit of
  the sample photos at most 60 bits, a stereo pair (the same scene from a step aside) 76, different photos
  100 and more.
* Groups are stars around a representative: a photo joins a group only when it is within MAX_BITS of
  the group's representative itself, so A~B~C never chains into one group.
* A pair marked "not a duplicate" is never grouped again.

The groups live in `data/duplicates.json` (`DuplicateBook`), written by ingest (new photos are checked as
they come, `check_new`; the first run over an existing library checks them all, `check_all`) and read by
`GET /api/duplicates`. Byte-identical files collapse into one point at ingest; its further paths are in
the payload (`other_paths`) and the book lists such points too.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.payload import ImagePayload, public_path
from core.phash import Fingerprint, distance
from core.store import IMAGES, VectorStore
from search.results import image_url, thumb_url

MAX_BITS = 68
NEIGHBOURS = 16
BOOK_FILE = "duplicates.json"


def book_path(data_dir: Path) -> Path:
    """Where the groups are kept."""
    return data_dir / BOOK_FILE


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class DuplicateBook:
    """Which photo is a duplicate of which representative, which points hold byte-identical files, and
    which pairs a person said are not duplicates. Saved atomically as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rep_of: dict[str, str] = {}
        self.identical: set[str] = set()
        self.distinct: set[tuple[str, str]] = set()
        self.exists = False
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        """Read the file again (another process, ingest, may have written it)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        with self._lock:
            self.exists = True
            self.rep_of = {str(k): str(v) for k, v in (data.get("rep_of") or {}).items()}
            self.identical = {str(i) for i in data.get("identical") or []}
            self.distinct = {_pair(str(a), str(b)) for a, b in data.get("distinct") or []}

    def save(self) -> None:
        """Write the file atomically."""
        with self._lock:
            data = {
                "version": 1,
                "rep_of": dict(sorted(self.rep_of.items())),
                "identical": sorted(self.identical),
                "distinct": sorted(list(p) for p in self.distinct),
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)
            self.exists = True

    def is_distinct(self, a: str, b: str) -> bool:
        """Whether a person said these two are not duplicates."""
        return _pair(a, b) in self.distinct

    def mark_distinct(self, representative: str, member: str) -> bool:
        """Remember that `member` is not a duplicate of `representative`; False if it was not grouped there."""
        with self._lock:
            if self.rep_of.get(member) != representative:
                return False
            del self.rep_of[member]
            self.distinct.add(_pair(representative, member))
            return True

    def groups(self) -> dict[str, list[str]]:
        """Representative -> members, for near groups and for points with byte-identical files."""
        with self._lock:
            groups: dict[str, list[str]] = {i: [] for i in sorted(self.identical)}
            for member, rep in sorted(self.rep_of.items()):
                groups.setdefault(rep, []).append(member)
            return groups


@dataclass
class _Photo:
    id: str
    fingerprint: Fingerprint | None
    bytes: int


def _photo(point_id: str, payload: dict[str, Any]) -> _Photo:
    stored = ImagePayload.from_stored(payload)
    return _Photo(point_id, Fingerprint.from_stored(list(stored.phash)), stored.bytes or 0)


class DuplicateFinder:
    """Checks photos against their nearest stored neighbours and records groups in a DuplicateBook."""

    def __init__(
        self, store: VectorStore, book: DuplicateBook, max_bits: int = MAX_BITS, neighbours: int = NEIGHBOURS
    ) -> None:
        self.store = store
        self.book = book
        self.max_bits = max_bits
        self.neighbours = neighbours

    def _candidates(self, point_id: str, vector: np.ndarray) -> list[_Photo]:
        hits = self.store.query(IMAGES, vector, limit=self.neighbours, exclude_id=point_id)
        return [_photo(h.id, h.payload) for h in hits]

    def check_new(self, point_ids: Sequence[str]) -> int:
        """Check photos just ingested: each joins the group of the nearest representative within
        MAX_BITS. Returns how many were found to be duplicates. Also notes byte-identical files."""
        found = 0
        for start in range(0, len(point_ids), 256):
            for point in self.store.retrieve(IMAGES, point_ids[start : start + 256], with_vectors=True):
                self._note_identical(point.id, point.payload)
                photo = _photo(point.id, point.payload)
                if point.vector is None or photo.fingerprint is None:
                    continue
                if point.id in self.book.rep_of or point.id in set(self.book.rep_of.values()):
                    continue  # grouped already, as a member or as a representative
                found += self._join(photo, point.vector)
        return found

    def _join(self, photo: _Photo, vector: np.ndarray) -> int:
        assert photo.fingerprint is not None
        best: tuple[int, str] | None = None
        reps: dict[str, _Photo] = {}
        candidates = self._candidates(photo.id, vector)
        wanted = {self.book.rep_of.get(c.id, c.id) for c in candidates} - {c.id for c in candidates}
        if wanted:  # representatives not among the neighbours themselves: their hashes, in one call
            reps = {p.id: _photo(p.id, p.payload) for p in self.store.retrieve(IMAGES, sorted(wanted))}
        for candidate in candidates:
            rep_id = self.book.rep_of.get(candidate.id, candidate.id)
            rep = candidate if rep_id == candidate.id else reps.get(rep_id)
            if rep is None or rep.fingerprint is None or rep_id == photo.id:
                continue
            if self.book.is_distinct(photo.id, rep_id):
                continue
            bits = distance(photo.fingerprint, rep.fingerprint)
            if bits <= self.max_bits and (best is None or (bits, rep_id) < best):
                best = (bits, rep_id)
        if best is None:
            return 0
        self.book.rep_of[photo.id] = best[1]
        return 1

    def check_all(self) -> int:
        """Regroup the whole library, largest file first, so each group's representative is its largest
        photo: each photo not yet grouped gathers its neighbours within MAX_BITS that are not grouped
        either. One index search per photo. Returns how many photos are duplicates of another."""
        photos: list[_Photo] = []
        self.book.rep_of.clear()
        self.book.identical.clear()
        for point in self.store.scroll(IMAGES):
            self._note_identical(point.id, point.payload)
            photo = _photo(point.id, point.payload)
            if photo.fingerprint is not None:
                photos.append(photo)
        photos.sort(key=lambda p: (-p.bytes, p.id))
        leaders: set[str] = set()
        for start in range(0, len(photos), 256):
            chunk = photos[start : start + 256]
            vectors = {
                p.id: p.vector
                for p in self.store.retrieve(IMAGES, [p.id for p in chunk], with_vectors=True)
                if p.vector is not None
            }
            for photo in chunk:
                if photo.id in self.book.rep_of or photo.id not in vectors:
                    continue
                self._gather(photo, vectors[photo.id], leaders)
        return len(self.book.rep_of)

    def _gather(self, leader: _Photo, vector: np.ndarray, leaders: set[str]) -> None:
        assert leader.fingerprint is not None
        for candidate in self._candidates(leader.id, vector):
            if candidate.fingerprint is None or candidate.id in self.book.rep_of or candidate.id in leaders:
                continue
            if self.book.is_distinct(leader.id, candidate.id):
                continue
            if distance(leader.fingerprint, candidate.fingerprint) <= self.max_bits:
                self.book.rep_of[candidate.id] = leader.id
                leaders.add(leader.id)

    def _note_identical(self, point_id: str, payload: dict[str, Any]) -> None:
        if ImagePayload.from_stored(payload).other_paths:
            self.book.identical.add(point_id)


# -- the listing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DuplicateFile:
    """One file of a group: the photo's id, path, size, and how it relates to the representative."""

    id: str
    path: str
    bytes: int | None
    width: int | None
    height: int | None
    thumb_url: str
    image_url: str
    representative: bool
    identical: bool
    distance: int | None
    largest: bool = False


@dataclass(frozen=True)
class DuplicateGroup:
    """The files of one photo: the representative first."""

    id: str
    kind: str
    files: list[DuplicateFile] = field(default_factory=list)


@dataclass(frozen=True)
class DuplicatePage:
    """A page of groups; `next_offset` is None on the last page."""

    groups: list[DuplicateGroup]
    total: int
    k: int
    offset: int
    next_offset: int | None


def listing(store: VectorStore, book: DuplicateBook, k: int, offset: int) -> DuplicatePage:
    """One page of groups, biggest groups first. Photos deleted since they were grouped are left out."""
    book.reload()
    groups = book.groups()
    order = sorted(groups, key=lambda rep: (-len(groups[rep]), rep))
    built: list[DuplicateGroup] = []
    position = offset
    while len(built) < k and position < len(order):
        rep = order[position]
        position += 1
        group = _group(store, rep, groups[rep])
        if group is not None:
            built.append(group)
    return DuplicatePage(
        groups=built,
        total=len(order),
        k=k,
        offset=offset,
        next_offset=position if position < len(order) else None,
    )


def _group(store: VectorStore, rep: str, members: Iterable[str]) -> DuplicateGroup | None:
    ids = [rep, *members]
    found = {p.id: p.payload for p in store.retrieve(IMAGES, ids)}
    if rep not in found:
        return None
    rep_payload = ImagePayload.from_stored(found[rep])
    rep_print = Fingerprint.from_stored(list(rep_payload.phash))
    files: list[DuplicateFile] = []
    for point_id in ids:
        if point_id not in found:
            continue
        payload = ImagePayload.from_stored(found[point_id])
        print_ = Fingerprint.from_stored(list(payload.phash))
        bits = 0 if point_id == rep else (distance(rep_print, print_) if rep_print and print_ else None)
        for n, path in enumerate((payload.path, *payload.other_paths)):
            files.append(
                DuplicateFile(
                    id=point_id,
                    path=public_path(path),
                    bytes=payload.bytes,
                    width=payload.width,
                    height=payload.height,
                    thumb_url=thumb_url(point_id),
                    image_url=image_url(point_id),
                    representative=point_id == rep and n == 0,
                    identical=point_id == rep,
                    distance=bits,
                )
            )
    if len(files) < 2:
        return None
    largest = max(range(len(files)), key=lambda i: (files[i].bytes or 0, -i))
    files[largest] = DuplicateFile(**{**files[largest].__dict__, "largest": True})
    kind = "identical" if all(f.id == rep for f in files) else "near"
    return DuplicateGroup(id=rep, kind=kind, files=files)
