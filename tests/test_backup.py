"""`make backup` / `make restore`: a generated library backed up and restored on a "fresh machine" (another
data folder) gives the same answers, answer by answer; into a Qdrant server too; a backup taken in the
middle of an ingest, inside the running service, restores to a consistent state; the CLI hands the backup
to a running service."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from qdrant_client import QdrantClient

from api.factory import create_app
from api.routes.admin import write_admin_token
from core.classes import OTHER
from core.model import ClipModel
from core.payload import LABELS_VERSION_KEY
from core.settings import Settings
from core.store import IMAGES, PROMPTS, PointRecord, VectorStore, open_store
from core.store.server import ServerStore
from core.thumbnails import thumb_path
from core.zero_shot import ZeroShotClassifier
from eval.crosscheck import run_crosscheck, save_report
from ingest.handoff import TOKEN_HEADER
from ingest.pipeline import run_ingest
from ops.archive import ArchiveError, ArchiveReader
from ops.backup import write_backup
from ops.restore import RestoreRefused, restore_backup
from tests.ops_helpers import answers, make_library

pytestmark = [
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant"),
    pytest.mark.filterwarnings("ignore:Local mode performs exact"),
]

REPO = Path(__file__).resolve().parent.parent


def ingested(settings: Settings, encoder: ClipModel, count: int = 14) -> None:
    """A library of `count` photos ingested into `settings`' embedded store, with its cross-check report."""
    make_library(settings.images_dir, count)
    store = open_store(settings)
    try:
        run_ingest(settings, encoder, store, show_progress=False)
        save_report(run_crosscheck(store, settings), settings.crosscheck_report)
    finally:
        store.close()


def run(module: str, args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_round_trip_on_a_fresh_machine_gives_the_same_answers(
    make_settings: Any, encoder: ClipModel, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    settings = make_settings()
    ingested(settings, encoder)
    store = open_store(settings)
    before = answers(settings, encoder, store)
    store.close()
    archive = tmp_path / "backups" / "library.tar"

    made = run("ops.backup", ["--archive", str(archive), "--no-handoff", "--quiet"], subprocess_env)
    assert made.returncode == 0, made.stderr
    assert "images: 14 points" in made.stdout
    assert not list(archive.parent.glob("*.partial")), "the partial archive is renamed into place"

    fresh = make_settings(data_dir=tmp_path / "fresh-data")
    env = {**subprocess_env, "DATA_DIR": str(fresh.data_dir)}
    restored = run("ops.restore", [str(archive)], env)
    assert restored.returncode == 0, restored.stderr
    store = open_store(fresh)
    try:
        assert answers(fresh, encoder, store) == before
    finally:
        store.close()
    # Thumbnails and reports come back byte for byte; the old service's token does not.
    old_files = files_under(settings.data_dir / "thumbs")
    assert old_files and files_under(fresh.data_dir / "thumbs") == old_files
    assert fresh.crosscheck_report.read_bytes() == settings.crosscheck_report.read_bytes()

    again = run("ops.restore", [str(archive)], env)
    assert again.returncode == 2 and "--force" in again.stderr, (
        "a store with photos is never overwritten silently"
    )
    forced = run("ops.restore", [str(archive), "--force"], env)
    assert forced.returncode == 0, forced.stderr


def test_an_embedded_backup_restores_into_a_qdrant_server(
    make_settings: Any, encoder: ClipModel, tmp_path: Path
) -> None:
    settings = make_settings()
    ingested(settings, encoder, count=9)
    store = open_store(settings)
    before = answers(settings, encoder, store)
    archive = tmp_path / "b.tar"
    write_backup(settings, store, archive)
    vectors = {p.id: p.vector for p in store.scroll(IMAGES, with_vectors=True)}
    store.close()

    fresh = make_settings(data_dir=tmp_path / "server-data", qdrant_url="http://qdrant.invalid:6333")
    server = ServerStore(url="local", client=QdrantClient(":memory:"))
    restore_backup(fresh, server, archive)
    assert answers(fresh, encoder, server) == before
    for point in server.scroll(IMAGES, with_vectors=True):
        # The server normalises cosine vectors again as it stores them: equal to the last float bit or so.
        assert np.allclose(point.vector, vectors[point.id], rtol=0, atol=1e-6)


def test_a_damaged_or_foreign_archive_is_refused(make_settings: Any, tmp_path: Path) -> None:
    settings = make_settings()
    store = open_store(settings)
    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as tar:
        tar.add(__file__, arcname="something.py")
    with pytest.raises(ArchiveError, match="not a Wonders backup"):
        restore_backup(settings, store, foreign)
    (tmp_path / "garbage.tar").write_bytes(b"not a tar at all")
    with pytest.raises(ArchiveError):
        restore_backup(settings, store, tmp_path / "garbage.tar")
    store.close()


class PausingStore:
    """The real store, except that the ingest stops after its second batch of photos until released."""

    def __init__(self, inner: VectorStore) -> None:
        self._inner = inner
        self.batches = 0
        self.paused = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def upsert(self, name: str, points: Sequence[PointRecord]) -> None:
        self._inner.upsert(name, points)
        if name == IMAGES:
            self.batches += 1
            if self.batches == 2:
                self.paused.set()
                assert self.release.wait(120)


def test_a_backup_taken_during_an_ingest_restores_consistently(
    make_settings: Any, encoder: ClipModel, tmp_path: Path
) -> None:
    settings = make_settings(encode_batch_size=4)
    make_library(settings.images_dir, 12, seed=900)
    inner = open_store(settings)
    store = PausingStore(inner)
    app = create_app(settings, encoder, store)  # type: ignore[arg-type]
    app.config["WONDERS_ADMIN_TOKEN"] = write_admin_token(settings.data_dir)
    client = app.test_client()
    headers = {TOKEN_HEADER: app.config["WONDERS_ADMIN_TOKEN"]}
    archive = tmp_path / "mid-ingest.tar"
    try:
        assert client.post("/api/admin/ingest", json={}, headers=headers).status_code == 202
        assert store.paused.wait(120), "the ingest reached its third batch"
        started = client.post("/api/admin/backup", json={"archive": str(archive)}, headers=headers)
        assert started.status_code == 202, started.get_data()
        app.extensions["wonders_ops"].wait(120)
        state = client.get("/api/admin/backup", headers=headers).get_json()
        assert state["state"] == "done", state
        originals = {p.id: p.vector for p in inner.scroll(IMAGES, with_vectors=True)}
    finally:
        store.release.set()
        app.extensions["wonders_ingest"].wait(120)
        inner.close()
    assert app.extensions["wonders_ingest"].status()["state"] == "done"

    fresh = make_settings(data_dir=tmp_path / "restored", encode_batch_size=4)
    restored = open_store(fresh)
    try:
        restore_backup(fresh, restored, archive)
        points = list(restored.scroll(IMAGES, with_vectors=True))
        assert len(points) == 8, "the two batches written before the backup, whole"
        classifier = ZeroShotClassifier.load(restored)
        assert classifier is not None
        fingerprint = ZeroShotClassifier.stored_fingerprint(restored)
        known = {c.id for c in classifier.classes} | {OTHER.id}
        for point in points:
            assert np.array_equal(point.vector, originals[point.id])
            assert point.payload["label"] in known
            assert point.payload[LABELS_VERSION_KEY] == fingerprint
            assert thumb_path(fresh.thumbs_dir, point.id).is_file(), "every point's thumbnail is there"
        assert restored.count(PROMPTS) == len(classifier.classes) + len(classifier.distractors)
        # The restored library is one a later ingest simply completes.
        report = run_ingest(fresh, encoder, restored, show_progress=False)
        assert (report.new, report.already_indexed, report.total_points) == (4, 8, 12)
    finally:
        restored.close()


@pytest.mark.slow
def test_make_backup_hands_the_work_to_the_running_service(live_server: Any, tmp_path: Path) -> None:
    archive = tmp_path / "from-service.tar"
    env = {**live_server.env, "PYTHONPATH": str(REPO)}
    made = run("ops.backup", ["--archive", str(archive), "--quiet"], env)
    assert made.returncode == 0, made.stderr + made.stdout
    assert "handing the backup to it" in made.stdout
    reader = ArchiveReader(archive)
    assert reader.manifest.collections[IMAGES]["points"] == 12
    names = {relative for relative, _ in reader.data_files()}
    reader.close()
    assert "admin.token" not in names and any(n.startswith("thumbs/") for n in names)
    # A stranger (no token) cannot ask for a backup.
    refused = requests.post(f"{live_server.url}/api/admin/backup", json={"archive": str(archive)}, timeout=10)
    assert refused.status_code == 403
    assert json.loads(refused.text)["error"]["code"] == "forbidden"


def test_the_restore_refuses_a_store_with_photos(
    make_settings: Any, encoder: ClipModel, tmp_path: Path
) -> None:
    settings = make_settings()
    ingested(settings, encoder, count=3)
    store = open_store(settings)
    try:
        write_backup(settings, store, tmp_path / "b.tar")
        with pytest.raises(RestoreRefused):
            restore_backup(settings, store, tmp_path / "b.tar")
    finally:
        store.close()
