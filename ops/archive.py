"""The backup archive: one tar holding every collection's points (vectors exact, payloads, meta) and the
data folder's own files (thumbnails, reports, calibration), readable by either store.

Layout:
    wonders-backup.json               the manifest: format, when, counts, the model each collection needs
    collections/<name>/meta.json      what `ensure_collection` records (model, dim, image_size)
    collections/<name>/points.jsonl   one point a line: id, payload, vector (float32 bytes, base64)
    data/<path>                       the data folder's files, shards excepted
    snapshots/<name>.snapshot         with a Qdrant server: its own snapshot of each collection

Points are exported through the store interface (scroll), not as shard files: a running service keeps its
embedded shard open (and a shard copied mid-write is not a shard), an export of points is consistent point
by point (each was written whole by one upsert, after its thumbnail), and it restores into the embedded
store or a Qdrant server alike, whatever engine version wrote it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from core.store.base import PointRecord

FORMAT = 1
MANIFEST = "wonders-backup.json"
COLLECTIONS_DIR = "collections"
DATA_DIR = "data"


class ArchiveError(ValueError):
    """Not a Wonders backup, a newer format, or a damaged one; the message says which."""


@dataclass
class Manifest:
    """What an archive holds."""

    created_at: str
    store: str
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {meta, points}
    files: int = 0
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. "snapshots" (ops/snapshots.py)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "format": self.format,
            "created_at": self.created_at,
            "store": self.store,
            "collections": self.collections,
            "files": self.files,
            **self.extra,
        }


def point_line(point: PointRecord) -> bytes:
    """One point as a JSON line; the vector as its exact float32 bytes."""
    vector = np.asarray(point.vector, dtype="<f4")
    record = {"id": point.id, "payload": point.payload, "vector": base64.b64encode(vector.tobytes()).decode()}
    return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"


def parse_point(line: bytes) -> PointRecord:
    """A point back from its JSON line."""
    record = json.loads(line)
    vector = np.frombuffer(base64.b64decode(record["vector"]), dtype="<f4").astype(np.float32)
    return PointRecord(id=str(record["id"]), payload=dict(record["payload"]), vector=vector)


class ArchiveWriter:
    """Writes the archive to a temporary file beside `path`, renamed into place only when complete."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._tar = tarfile.open(self._tmp, "w")  # noqa: SIM115 - closed by finish or abort

    def add_bytes(self, name: str, data: bytes) -> None:
        """A member from memory."""
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = int(time.time())
        info.mode = 0o600
        self._tar.addfile(info, io.BytesIO(data))

    def add_stream(self, name: str, source: IO[bytes], size: int) -> None:
        """A member from an open file of known size."""
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = int(time.time())
        info.mode = 0o600
        self._tar.addfile(info, source)

    def add_points(self, name: str, points: Iterator[PointRecord], on_point: Callable[[], None]) -> int:
        """A collection's points, spooled to a temporary file first (the tar needs the size up front)."""
        count = 0
        with tempfile.TemporaryFile() as spool:
            for point in points:
                spool.write(point_line(point))
                count += 1
                on_point()
            size = spool.tell()
            spool.seek(0)
            self.add_stream(f"{COLLECTIONS_DIR}/{name}/points.jsonl", spool, size)
        return count

    def add_file(self, name: str, path: Path) -> bool:
        """A file of the data folder; False when it went away meanwhile (a pruned thumbnail)."""
        try:
            with path.open("rb") as source:
                size = os.fstat(source.fileno()).st_size
                self.add_stream(name, source, size)
            return True
        except FileNotFoundError:
            return False

    def finish(self, manifest: Manifest) -> Path:
        """Write the manifest, close, fsync and move the archive into place."""
        self.add_bytes(MANIFEST, json.dumps(manifest.as_dict(), indent=2).encode("utf-8"))
        self._tar.close()
        with self._tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial archive."""
        self._tar.close()
        self._tmp.unlink(missing_ok=True)


class ArchiveReader:
    """Reads a backup archive; every member name is checked before anything is written from it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._tar = tarfile.open(path, "r")  # noqa: SIM115 - closed by close()
            member = self._tar.extractfile(MANIFEST)
        except (tarfile.TarError, KeyError, OSError) as err:
            raise ArchiveError(f"{path} is not a Wonders backup ({err})") from err
        if member is None:
            raise ArchiveError(f"{path} is not a Wonders backup (no {MANIFEST})")
        data = json.loads(member.read())
        if data.get("format") != FORMAT:
            raise ArchiveError(
                f"{path} has backup format {data.get('format')!r}; this version reads {FORMAT}"
            )
        self.manifest = Manifest(
            created_at=str(data["created_at"]),
            store=str(data["store"]),
            collections=dict(data["collections"]),
            files=int(data["files"]),
            extra={
                k: v
                for k, v in data.items()
                if k not in ("format", "created_at", "store", "collections", "files")
            },
        )

    def member(self, name: str) -> IO[bytes]:
        """One member's content, by name."""
        try:
            source = self._tar.extractfile(name)
        except KeyError:
            source = None
        if source is None:
            raise ArchiveError(f"{self.path} lacks {name}")
        return source

    def points(self, name: str) -> Iterator[PointRecord]:
        """The points of one collection, as written."""
        member = self._tar.extractfile(f"{COLLECTIONS_DIR}/{name}/points.jsonl")
        if member is None:
            raise ArchiveError(f"{self.path} lacks the points of '{name}'")
        for line in member:
            if line.strip():
                yield parse_point(line)

    def data_files(self) -> Iterator[tuple[str, IO[bytes]]]:
        """(relative path, content) of every data file: regular files only, never outside the folder."""
        for member in self._tar:
            if not member.name.startswith(f"{DATA_DIR}/") or not member.isfile():
                continue
            relative = member.name.removeprefix(f"{DATA_DIR}/")
            parts = Path(relative).parts
            if not parts or Path(relative).is_absolute() or ".." in parts:
                raise ArchiveError(f"{self.path} holds an unsafe name: {member.name!r}")
            source = self._tar.extractfile(member)
            if source is not None:
                yield relative, source

    def close(self) -> None:
        """Close the archive."""
        self._tar.close()
