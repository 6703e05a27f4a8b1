"""Reading library files safely: regular files only (never blocking on a FIFO), with a size cap."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnreadableFile(OSError):
    """The file cannot be used; `reason` is a short human sentence for the ingest summary."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def max_file_bytes(max_image_pixels: int) -> int:
    """The largest file worth reading: an uncompressed 16-bit RGBA image at the pixel limit."""
    return max(64 << 20, max_image_pixels * 8)


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, or UnreadableFile (see `read_with_state`)."""
    return read_with_state(path, max_bytes)[0]


def read_with_state(path: Path, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file of at most `max_bytes` and its state when opened, or UnreadableFile.

    Opened non-blocking and checked after opening, so a file swapped for a FIFO or a device after the
    scan is refused instead of hanging the run."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise UnreadableFile(f"cannot read ({err.strerror or err})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile("not a regular file")
        if info.st_size > max_bytes:
            raise UnreadableFile(f"file too large ({info.st_size:,} bytes > {max_bytes:,})")
        chunks = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(1 << 20, remaining))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise UnreadableFile(f"file too large (more than {max_bytes:,} bytes)")
        return data, info
    except UnreadableFile:
        raise
    except OSError as err:
        raise UnreadableFile(f"cannot read ({err.strerror or err})") from None
    finally:
        os.close(fd)
