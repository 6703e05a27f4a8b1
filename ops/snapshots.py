"""Qdrant server snapshots in the backup archive: with the server store, `make backup` also asks the server
for a snapshot of each collection (its own consistent, native copy, HNSW index included) and `make
restore` onto a server uploads it back, so a large collection is not re-indexed point by point.

The archive keeps the points export as well (`ops/archive.py`): it restores into the embedded store, or
into a server whose version cannot read the snapshot. qdrant-client's local mode has no snapshots
(`NotImplementedError`): there the archive holds the points only, and the manifest says why.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

import requests

from core.store.server import ServerStore
from ops.archive import ArchiveReader, ArchiveWriter

log = logging.getLogger(__name__)

SNAPSHOTS_DIR = "snapshots"
TIMEOUT_S = 600


def add_snapshots(
    store: ServerStore, names: list[str], writer: ArchiveWriter, api_key: str | None
) -> dict[str, Any]:
    """Snapshot each collection on the server, copy it into the archive, delete it on the server.

    Returns what the manifest records: {"collections": {name: member}} or {"skipped": reason}."""
    added: dict[str, str] = {}
    for name in names:
        physical = store.collection_target(name)
        try:
            snapshot = store.client.create_snapshot(collection_name=physical, wait=True)
        except NotImplementedError:
            return {"skipped": "this Qdrant (qdrant-client's local mode) makes no snapshots"}
        if snapshot is None:
            return {"skipped": f"the server made no snapshot of '{physical}'"}
        url = f"{store.url.rstrip('/')}/collections/{physical}/snapshots/{snapshot.name}"
        member = f"{SNAPSHOTS_DIR}/{name}.snapshot"
        try:
            with requests.get(url, headers=_headers(api_key), stream=True, timeout=TIMEOUT_S) as response:
                response.raise_for_status()
                with tempfile.TemporaryFile() as spool:
                    for chunk in response.iter_content(1 << 20):
                        spool.write(chunk)
                    size = spool.tell()
                    spool.seek(0)
                    writer.add_stream(member, spool, size)
        finally:
            store.client.delete_snapshot(collection_name=physical, snapshot_name=snapshot.name, wait=True)
        added[name] = member
    return {"collections": added}


def restore_snapshots(store: ServerStore, reader: ArchiveReader, api_key: str | None) -> list[str]:
    """Upload the archive's snapshots to the server, each as the collection it was taken of; the names
    restored (the others are restored from their points)."""
    recorded = reader.manifest.extra.get("snapshots", {}).get("collections", {})
    restored = []
    for name, member in recorded.items():
        source = reader.member(member)
        url = f"{store.url.rstrip('/')}/collections/{name}/snapshots/upload"
        response = requests.post(
            url,
            params={"wait": "true", "priority": "snapshot"},
            files={"snapshot": (f"{name}.snapshot", source)},
            headers=_headers(api_key),
            timeout=TIMEOUT_S,
        )
        if response.status_code >= 400:
            log.warning("snapshot of %s refused (%s): restoring its points", name, response.status_code)
            continue
        restored.append(name)
    return restored


def _headers(api_key: str | None) -> dict[str, str]:
    return {"api-key": api_key} if api_key else {}
