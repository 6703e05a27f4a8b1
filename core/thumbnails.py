"""Thumbnails on disk, one JPEG per image id under data/thumbs/, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from core.ids import is_point_id


def thumb_path(thumbs_dir: Path, point_id: str) -> Path:
    """Where the thumbnail of `point_id` lives (two-level fan-out keeps folders small)."""
    if not is_point_id(point_id):
        raise ValueError("not a point id")
    return thumbs_dir / point_id[:2] / f"{point_id}.jpg"


def write_thumb(thumbs_dir: Path, point_id: str, jpeg: bytes) -> Path:
    """Write a thumbnail via a temporary file and a rename, so a crash never leaves half a file."""
    path = thumb_path(thumbs_dir, point_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".jpg")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(jpeg)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_thumb(thumbs_dir: Path, point_id: str) -> None:
    """Delete a thumbnail if it exists."""
    thumb_path(thumbs_dir, point_id).unlink(missing_ok=True)
