"""Backups with the server store: Qdrant's snapshots.

qdrant-client's local mode has no snapshots, so there the archive holds the points only (and says why) and
still restores, here into the embedded store. The snapshot calls themselves are checked against a stand-in
for the server's REST API (create, download, delete, upload): the requests the real server would get.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from core.model import ClipModel
from core.store import IMAGES, open_store
from core.store.server import ServerStore
from ingest.pipeline import run_ingest
from ops.archive import ArchiveReader, ArchiveWriter, Manifest
from ops.backup import write_backup
from ops.restore import restore_backup
from ops.snapshots import add_snapshots, restore_snapshots
from tests.ops_helpers import answers, make_library

pytestmark = [
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant"),
    pytest.mark.filterwarnings("ignore:Local mode performs exact"),
    pytest.mark.filterwarnings("ignore:Failed to obtain server version"),
    pytest.mark.filterwarnings("ignore:Qdrant client version"),
    pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection"),
]

SNAPSHOT_BYTES = b"QDRANT-SNAPSHOT\x00" + bytes(range(256)) * 64


def test_local_mode_backs_up_points_and_says_why_there_is_no_snapshot(
    make_settings: Any, encoder: ClipModel, tmp_path: Path
) -> None:
    settings = make_settings(qdrant_url="http://qdrant.invalid:6333")
    server = ServerStore(url="local", client=QdrantClient(":memory:"))
    make_library(settings.images_dir, 7)
    run_ingest(settings, encoder, server, show_progress=False)
    before = answers(settings, encoder, server)
    manifest = write_backup(settings, server, tmp_path / "server.tar")
    assert "local mode" in manifest.extra["snapshots"]["skipped"]
    assert manifest.store == "server"

    fresh = make_settings(data_dir=tmp_path / "embedded-data")
    embedded = open_store(fresh)
    try:
        restore_backup(fresh, embedded, tmp_path / "server.tar")
        assert answers(fresh, encoder, embedded) == before
    finally:
        embedded.close()


class FakeQdrant:
    """The REST endpoints a snapshot backup and restore use, recording what they were asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.uploads: dict[str, bytes] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, result: Any) -> None:
                body = json.dumps({"result": result, "status": "ok", "time": 0.0}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self) -> str:
                path = self.path.split("?")[0]
                fake.calls.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                return path

            def do_GET(self) -> None:
                path = self._record()
                if path == "/":
                    self._root()
                elif path == "/aliases":
                    self._json({"aliases": [{"alias_name": "images", "collection_name": "images__m"}]})
                elif re.fullmatch(r"/collections/[^/]+/snapshots/[^/]+", path):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(SNAPSHOT_BYTES)))
                    self.end_headers()
                    self.wfile.write(SNAPSHOT_BYTES)
                else:
                    self.send_error(404)

            def _root(self) -> None:
                body = json.dumps({"title": "qdrant", "version": "1.20.0"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                path = self._record()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if match := re.fullmatch(r"/collections/([^/]+)/snapshots/upload", path):
                    fake.uploads[match.group(1)] = body
                    self._json(True)
                elif match := re.fullmatch(r"/collections/([^/]+)/snapshots", path):
                    self._json({"name": f"{match.group(1)}-1.snapshot", "creation_time": None, "size": 1})
                else:
                    self.send_error(404)

            def do_DELETE(self) -> None:
                self._record()
                self._json(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def fake_qdrant() -> Iterator[FakeQdrant]:
    fake = FakeQdrant()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_snapshots_are_taken_copied_deleted_and_uploaded_back(
    fake_qdrant: FakeQdrant, tmp_path: Path
) -> None:
    store = ServerStore(
        fake_qdrant.url,
        api_key="k-123",
        client=QdrantClient(url=fake_qdrant.url, api_key="k-123", https=False),
    )
    archive = tmp_path / "snap.tar"
    writer = ArchiveWriter(archive)
    recorded = add_snapshots(store, ["images", "prompts"], writer, "k-123")
    manifest = Manifest(created_at="now", store="server", extra={"snapshots": recorded})
    writer.finish(manifest)
    assert recorded == {
        "collections": {"images": "snapshots/images.snapshot", "prompts": "snapshots/prompts.snapshot"}
    }
    calls = [(method, path.split("?")[0]) for method, path, _ in fake_qdrant.calls if path != "/"]
    # "images" is an alias: its collection is snapshotted; each snapshot is deleted once copied.
    for physical in ("images__m", "prompts"):
        assert ("POST", f"/collections/{physical}/snapshots") in calls
        assert ("GET", f"/collections/{physical}/snapshots/{physical}-1.snapshot") in calls
        assert ("DELETE", f"/collections/{physical}/snapshots/{physical}-1.snapshot") in calls
    assert all(headers.get("api-key") == "k-123" for _, path, headers in fake_qdrant.calls if path != "/")

    reader = ArchiveReader(archive)
    assert reader.member("snapshots/images.snapshot").read() == SNAPSHOT_BYTES
    restored = restore_snapshots(store, reader, "k-123")
    reader.close()
    assert sorted(restored) == ["images", "prompts"]
    assert SNAPSHOT_BYTES in fake_qdrant.uploads["images"], "the snapshot file is the multipart upload"
    upload = next(
        path
        for method, path, _ in fake_qdrant.calls
        if path.startswith("/collections/images/snapshots/upload")
    )
    assert "priority=snapshot" in upload and "wait=true" in upload
    assert IMAGES in restored
