"""Files that failed to decode, remembered by content hash, so the next run does not decode them again.

A file that changes gets another hash and is tried again. The record is a small JSON file in DATA_DIR."""

from __future__ import annotations

import json
import os
from pathlib import Path

FILE_NAME = "undecodable.json"


class Undecodable:
    """sha256 -> the reason the bytes could not be decoded."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            self._reasons: dict[str, str] = {str(k): str(v) for k, v in dict(loaded).items()}
        except (OSError, ValueError, TypeError):
            self._reasons = {}
        self._changed = False

    def reason(self, sha256: str) -> str | None:
        """Why these bytes failed before, or None."""
        return self._reasons.get(sha256)

    def remember(self, sha256: str, reason: str) -> None:
        """Record a decoding failure (saved by `save`)."""
        if self._reasons.get(sha256) != reason:
            self._reasons[sha256] = reason
            self._changed = True

    def save(self) -> None:
        """Write the record atomically, if anything changed."""
        if not self._changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._reasons, indent=0, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)
        self._changed = False
