"""Serving a library file only while it is still the indexed photo, inside the library, as a regular file.

An indexed path is a promise about bytes, not a name to open blindly: the file may since have been
replaced by a link to a secret, by another file, by a FIFO. `open_indexed` opens the real path only when it
lies inside the library, refuses anything but a regular file, and checks the opened file against what
ingest recorded: the same size and modification time, else the same SHA-256 (re-hashed once, then
remembered). Anything else is `FileMissing` (404) until the file is ingested again.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.payload import ImagePayload, library_file
from search.errors import FileMissing

CHANGED = "The image's file changed since it was indexed; run `make ingest` to index it again."
GONE = "The image is indexed but its file is no longer in the library."


@dataclass
class ServedFile:
    """An open file (or bytes) to send, with what its response needs."""

    handle: BinaryIO
    mimetype: str
    etag: str
    size: int


class VerifiedFiles:
    """Remembers which (file, size, mtime) were re-hashed and found to be the indexed bytes."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._verified: dict[tuple[str, int, int, int, int], None] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def known(self, key: tuple[str, int, int, int, int]) -> bool:
        """True when this exact file state was verified before."""
        with self._lock:
            return key in self._verified

    def remember(self, key: tuple[str, int, int, int, int]) -> None:
        """Remember a verified file state (the oldest are forgotten first)."""
        with self._lock:
            if len(self._verified) >= self._max:
                self._verified.pop(next(iter(self._verified)))
            self._verified[key] = None


def open_indexed(
    point_id: str, payload: ImagePayload, images_dir: Path, verified: VerifiedFiles
) -> ServedFile:
    """The indexed file of a photo, opened, or FileMissing; see the module docstring."""
    library = images_dir.resolve()
    try:
        real = library_file(payload.path, images_dir).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # gone, a link loop, a NUL in a damaged payload
        raise FileMissing(GONE) from None
    if not real.is_relative_to(library):
        raise FileMissing(GONE)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise FileMissing(GONE) from None
    try:
        handle = _checked(fd, point_id, payload, library, verified)
    except BaseException:
        os.close(fd)
        raise
    mimetype = mimetypes.guess_type(real.name)[0] or "application/octet-stream"
    return ServedFile(handle, mimetype, etag=payload.sha256 or point_id, size=os.fstat(fd).st_size)


def _checked(
    fd: int, point_id: str, payload: ImagePayload, library: Path, verified: VerifiedFiles
) -> BinaryIO:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise FileMissing(GONE)
    opened = _opened_path(fd)
    if opened is not None and not opened.is_relative_to(library):  # a folder swapped for a link meanwhile
        raise FileMissing(GONE)
    same_state = payload.bytes == info.st_size and payload.mtime_ns == info.st_mtime_ns
    key = (point_id, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    if not same_state and not verified.known(key):
        size_differs = payload.bytes is not None and payload.bytes != info.st_size
        if payload.sha256 is None or size_differs or _sha256(fd) != payload.sha256:
            raise FileMissing(CHANGED)
        verified.remember(key)
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _opened_path(fd: int) -> Path | None:
    """The real path of an open file, where the system tells it (Linux), else None."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None


def _sha256(fd: int) -> str:
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        digest.update(chunk)
    return digest.hexdigest()
