"""`<images_dir>/<class_id>/manifest.json`: file name -> attribution, written atomically after every file.

Format (read by the ingest job into each point's `attribution` payload):
    {"<file name>": {"title": ..., "author": ..., "license": ..., "license_url": ... or null,
                     "source_url": "<the file's description page>", "source": "wikimedia" | "pixabay"}}
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"

log = logging.getLogger(__name__)


class Manifest:
    """The attribution of every file of one class folder."""

    def __init__(self, folder: Path, entries: dict[str, dict[str, Any]] | None = None) -> None:
        self.folder = folder
        self.path = folder / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = dict(entries or {})

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        """Read the folder's manifest; missing means empty, a corrupt one is renamed aside (then empty)."""
        path = folder / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(folder)
        except (OSError, ValueError) as err:
            aside = path.with_name(f"{MANIFEST_NAME}.corrupt-{int(time.time())}")
            log.warning("%s is unreadable (%s); moved to %s and starting afresh", path, err, aside.name)
            os.replace(path, aside)
            return cls(folder)
        if not isinstance(data, dict):
            return cls(folder)
        return cls(folder, {str(k): v for k, v in data.items() if isinstance(v, dict)})

    def has(self, file_name: str) -> bool:
        """True when the file is recorded and still on disk."""
        return file_name in self.entries and (self.folder / file_name).is_file()

    def present(self) -> list[str]:
        """The recorded files that are still on disk."""
        return [name for name in self.entries if (self.folder / name).is_file()]

    def add(self, file_name: str, entry: dict[str, Any]) -> None:
        """Record one file and save at once."""
        self.entries[file_name] = entry
        self.save()

    def save(self) -> None:
        """Write the manifest atomically (temporary file, fsync, os.replace)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{MANIFEST_NAME}.tmp"
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(self.entries, handle, ensure_ascii=False, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
