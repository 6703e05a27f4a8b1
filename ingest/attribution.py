"""Photo attribution from the `manifest.json` that `make dataset` writes beside the photos."""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
FIELDS = ("title", "author", "license", "license_url", "source_url", "source")


@lru_cache(maxsize=256)
def _manifest(folder: Path, mtime: float) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable %s: %s", folder / MANIFEST, err)
        return {}
    return data if isinstance(data, dict) else {}


def attribution_for(photo: Path) -> dict[str, str] | None:
    """The photo's title, author, licence and source page, when its folder's manifest knows them."""
    manifest_file = photo.parent / MANIFEST
    try:
        mtime = manifest_file.stat().st_mtime
    except OSError:
        return None
    entry = _manifest(photo.parent, mtime).get(photo.name)
    if not isinstance(entry, dict):
        return None
    found = {key: str(entry[key]) for key in FIELDS if entry.get(key) not in (None, "")}
    return found or None
