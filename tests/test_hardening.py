"""Issue 19, each attack once: files outside the library, memory per upload, slow clients, an empty or
damaged store, long texts, a hung store, a read-only data folder, lost hand-offs, request framing, odd file
names, nginx's own answers and DNS rebinding. The longer runs that measure are behind `-m chaos`
(`make test-chaos`, `bench/attacks.py`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("tests.api_helpers", "tests.nginx_support")

import contextlib  # noqa: E402

import requests  # noqa: E402
from flask import Flask  # noqa: E402
from PIL import Image  # noqa: E402

from api.factory import create_app  # noqa: E402
from core.decode_budget import DecodeBudget, DecodeBusy  # noqa: E402
from core.images import UnsupportedImage, decode_image  # noqa: E402
from core.model import ClipModel  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store import IMAGES, StoreUnavailable, VectorStore, open_store  # noqa: E402
from core.store.breaker import BreakerOpen, CircuitBreakerStore  # noqa: E402
from core.store.embedded import EmbeddedStore  # noqa: E402
from core.store.server import ServerStore  # noqa: E402
from devtools.hung_qdrant import HungQdrant  # noqa: E402
from devtools.live_server import LiveServer, start_gunicorn  # noqa: E402
from ingest import handoff  # noqa: E402
from ingest.pipeline import run_ingest  # noqa: E402
from ingest.scan import scan  # noqa: E402
from tests.api_helpers import assert_error  # noqa: E402
from tests.image_factory import jpeg_bytes, photo, write  # noqa: E402
from tests.nginx_support import needs_nginx  # noqa: E402

pytest_plugins = ["tests.api_helpers", "tests.nginx_support"]

REPO = Path(__file__).resolve().parent.parent


# -- a small library of our own, per test ---------------------------------------------------------------
class Library:
    """Settings, an open embedded store, and the ids of what was ingested."""

    def __init__(self, settings: Settings, encoder: ClipModel, files: dict[str, bytes]) -> None:
        for relative, data in files.items():
            write(settings.images_dir / relative, data)
        self.settings = settings
        self.encoder = encoder
        self.store: VectorStore = open_store(settings)
        run_ingest(settings, encoder, self.store, show_progress=False)
        self.ids = {
            str(p.payload["path"]): p.id for p in self.store.scroll(IMAGES) if isinstance(p.payload, dict)
        }

    def app(self, store: VectorStore | None = None) -> Flask:
        """The app over this library."""
        return create_app(self.settings, self.encoder, store or self.store)


@pytest.fixture
def library(settings: Settings, encoder: ClipModel) -> Iterator[Library]:
    """Three photos, ingested."""
    lib = Library(settings, encoder, {f"p{i}.jpg": jpeg_bytes(photo(300 + i, (200, 150))) for i in range(3)})
    yield lib
    with contextlib.suppress(Exception):
        lib.store.close()


# -- 1. no file outside the library, and only the indexed bytes ---------------------------------------
def test_an_indexed_file_swapped_for_a_link_to_a_secret_is_not_served(library: Library) -> None:
    secret = library.settings.data_dir / "admin.token"
    secret.write_text("the-secret-token")
    point_id = library.ids["p0.jpg"]
    client = library.app().test_client()
    assert client.get(f"/images/{point_id}").status_code == 200
    target = library.settings.images_dir / "p0.jpg"
    target.unlink()
    target.symlink_to(secret)
    for path in (f"/images/{point_id}", f"/images/{point_id}/thumb"):
        response = client.get(path)
        assert b"the-secret-token" not in response.get_data()
    assert_error(client.get(f"/images/{point_id}"), 404, "file_missing")


def test_a_changed_file_is_404_and_a_touched_one_is_still_served(library: Library) -> None:
    client = library.app().test_client()
    changed, touched = library.settings.images_dir / "p1.jpg", library.settings.images_dir / "p2.jpg"
    original = changed.read_bytes()
    changed.write_bytes(bytes(reversed(original)))  # the same size, other bytes
    error = assert_error(client.get(f"/images/{library.ids['p1.jpg']}"), 404, "file_missing")
    assert "make ingest" in error["message"]
    os.utime(touched, ns=(1_000_000_000, 1_000_000_000))  # another time, the same bytes: re-hashed
    served = client.get(f"/images/{library.ids['p2.jpg']}")
    assert served.status_code == 200 and served.get_data() == touched.read_bytes()
    changed.write_bytes(original)
    assert client.get(f"/images/{library.ids['p1.jpg']}").get_data() == original


def test_points_from_before_the_file_state_was_recorded_are_rehashed(library: Library) -> None:
    point_id = library.ids["p0.jpg"]
    payload = library.store.retrieve(IMAGES, [point_id])[0].payload
    assert isinstance(payload.get("mtime_ns"), int)  # recorded at ingest now
    library.store.set_payload(IMAGES, point_id, {"mtime_ns": None})
    client = library.app().test_client()
    assert client.get(f"/images/{point_id}").status_code == 200
    (library.settings.images_dir / "p0.jpg").write_bytes(jpeg_bytes(photo(999, (200, 150))))
    assert_error(client.get(f"/images/{point_id}"), 404, "file_missing")


def test_a_link_out_of_the_library_is_not_ingested(settings: Settings, encoder: ClipModel) -> None:
    outside = write(settings.images_dir.parent / "outside" / "private.jpg", jpeg_bytes(photo(7)))
    write(settings.images_dir / "own.jpg", jpeg_bytes(photo(8)))
    (settings.images_dir / "link.jpg").symlink_to(outside)
    (settings.images_dir / "inner.jpg").symlink_to(settings.images_dir / "own.jpg")  # inside: fine
    result = scan([settings.images_dir], library=settings.images_dir)
    assert "link.jpg" not in {p.name for p in result.files}
    assert any("link out of the photo library" in why for _, why in result.skipped)
    store = open_store(settings)
    try:
        report = run_ingest(settings, encoder, store, show_progress=False)
        paths = {p.payload["path"] for p in store.scroll(IMAGES)}
    finally:
        store.close()
    assert report.new == 1 and paths == {"own.jpg"}, report.summary()


def test_the_admin_ingest_takes_only_paths_inside_the_library(library: Library) -> None:
    app = library.app()
    app.config["WONDERS_ADMIN_TOKEN"] = "t"
    client = app.test_client()
    headers = {handoff.TOKEN_HEADER: "t"}
    for path in ("/etc", str(library.settings.images_dir / ".." / "data"), "relative/path"):
        response = client.post("/api/admin/ingest", json={"paths": [path]}, headers=headers)
        assert_error(response, 400, "outside_library")


def test_a_file_name_with_cr_lf_is_served(settings: Settings, encoder: ClipModel) -> None:
    lib = Library(settings, encoder, {"evil\r\nSet-Cookie: x=1.jpg": jpeg_bytes(photo(11))})
    try:
        (point_id,) = lib.ids.values()
        response = lib.app().test_client().get(f"/images/{point_id}")
        assert response.status_code == 200 and "Set-Cookie" not in response.headers
        assert response.headers["Content-Type"] == "image/jpeg"
    finally:
        lib.store.close()


# -- 2. bounded memory per upload ---------------------------------------------------------------------------
def _png(width: int, height: int, mode: str = "L") -> bytes:
    import io

    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, "PNG")
    return out.getvalue()


def test_an_absurd_strip_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(UnsupportedImage, match="aspect ratio"):
        decode_image(_png(1, 49_999_000), 50_000_000)
    decode_image(_png(100_000, 1), 50_000_000)  # cheap strips are still cut and searched


def test_a_decode_waits_for_the_budget_then_is_refused() -> None:
    budget = DecodeBudget(total=64 << 20, wait_s=0.2)
    data = _png(3000, 3000, "RGBA")
    with budget.reserve(64 << 20), pytest.raises(DecodeBusy):
        decode_image(data, 50_000_000, budget=budget)
    decoded = decode_image(data, 50_000_000, budget=budget)  # free again
    assert decoded.width == 3000 and budget.used == 0


def test_an_upload_over_the_budget_is_503_with_retry_after(library: Library) -> None:
    app = library.app()
    service = app.extensions["wonders"]
    service.decode_budget.wait_s = 0.1
    with service.decode_budget.reserve(service.decode_budget.total):
        response = app.test_client().post(
            "/api/search/image", data={"image": (__import__("io").BytesIO(_png(2000, 2000)), "a.png")}
        )
    assert_error(response, 503, "busy")
    assert response.headers["Retry-After"]


# -- 4 and 12. an empty library is an empty page ---------------------------------------------------------
def _empty_library_answers(client: Any) -> None:
    unknown = "00000000-0000-5000-8000-000000000000"
    response = client.get("/api/search?q=tower")
    assert response.status_code == 200, response.get_data()[:300]
    body = response.get_json()
    assert body["results"] == [] and body["reason"] == "empty_library"
    # An id the library does not hold is unknown, however empty the library is.
    assert client.get(f"/api/images/{unknown}/similar").status_code == 404
    stats = client.get("/api/stats")
    assert stats.status_code == 200 and stats.get_json()["points"] == 0
    assert client.get("/api/classes").status_code == 200
    for path in (f"/images/{unknown}", f"/images/{unknown}/thumb", f"/api/images/{unknown}"):
        assert_error(client.get(path), 404)
    assert client.get("/api/ready").status_code == 200


def test_an_empty_embedded_library_answers_empty_pages(settings: Settings, encoder: ClipModel) -> None:
    store = open_store(settings)
    try:
        _empty_library_answers(create_app(settings, encoder, store).test_client())
    finally:
        store.close()


def test_a_server_without_the_images_collection_answers_empty_pages(
    settings: Settings, encoder: ClipModel
) -> None:
    from qdrant_client import QdrantClient

    store = ServerStore("http://local", client=QdrantClient(":memory:"))
    _empty_library_answers(create_app(settings, encoder, store).test_client())
    store.ensure_collection(IMAGES, encoder.identity.as_meta())
    assert create_app(settings, encoder, store).test_client().get("/api/search?q=x").status_code == 200
    store.client.delete_collection(IMAGES)  # deleted later
    _empty_library_answers(create_app(settings, encoder, store).test_client())


def test_a_shard_folder_gone_is_said_by_readiness(library: Library) -> None:
    import shutil

    client = library.app().test_client()
    assert client.get("/api/ready").status_code == 200
    shutil.rmtree(library.settings.shard_dir / IMAGES)
    error = assert_error(client.get("/api/ready"), 503, "store_damaged")
    assert "shard" in error["message"] and str(library.settings.data_dir) not in error["message"]
    assert client.get("/api/health").status_code == 200


def test_a_shard_that_cannot_be_opened_is_damage_not_an_outage(
    settings: Settings, encoder: ClipModel
) -> None:
    lib = Library(settings, encoder, {"a.jpg": jpeg_bytes(photo(1))})
    lib.store.close()
    (settings.shard_dir / IMAGES / "edge_config.json").write_text("{ not json")
    store = open_store(settings)
    try:
        client = create_app(settings, encoder, store).test_client()
        error = assert_error(client.get("/api/ready"), 503, "store_damaged")
        assert "retry soon" not in error["message"]
        assert_error(client.get("/api/search?q=x"), 503, "store_damaged")
    finally:
        store.close()


# -- 5. a corrupt meta file ---------------------------------------------------------------------------------
def test_a_corrupt_meta_file_is_503_with_the_reason_and_recovers(library: Library) -> None:
    meta = library.settings.shard_dir / f"{IMAGES}.meta.json"
    good = meta.read_text()
    client = library.app().test_client()
    point_id = library.ids["p0.jpg"]
    meta.write_text('{"model": "x", truncated')
    assert "meta" in assert_error(client.get("/api/ready"), 503, "store_damaged")["message"]
    assert_error(client.get("/api/search?q=x"), 503, "store_damaged")
    assert client.get(f"/images/{point_id}").status_code == 200  # what can be served still is
    assert client.get("/api/health").status_code == 200
    meta.write_text("[1, 2]")
    assert_error(client.get("/api/ready"), 503, "store_damaged")
    meta.write_text(good)
    assert client.get("/api/ready").status_code == 200
    assert client.get("/api/search?q=x").status_code == 200


# -- 6. long texts with a tokenizer that does not say its limit ------------------------------------------
def test_long_texts_are_truncated_without_model_max_length(tmp_path: Path, settings: Settings) -> None:
    from devtools.tiny_clip import build_tiny_clip

    folder = build_tiny_clip(tmp_path / "clip-no-limit")
    config = folder / "tokenizer_config.json"
    values = json.loads(config.read_text())
    values.pop("model_max_length", None)
    config.write_text(json.dumps(values))
    encoder = ClipModel(str(folder), device="cpu", precision="fp32")
    store = open_store(settings)
    try:
        client = create_app(settings, encoder, store).test_client()
        assert client.get("/api/search", query_string={"q": "word " * 1600}).status_code == 200
        assert client.post("/api/search", json={"q": "x" * 20000}).status_code == 200
        assert client.get("/api/search", query_string={"q": "e" + "\u0301" * 500}).status_code == 200
    finally:
        store.close()


# -- 7. a store that keeps failing is failed fast --------------------------------------------------------
class FlakyStore(EmbeddedStore):
    """An embedded store whose calls fail while `down` (counting the calls that reached it)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.down = False
        self.calls = 0

    def count(self, name: str, label: str | None = None) -> int:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("timed out")
        return super().count(name, label)

    def ping(self) -> None:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("timed out")
        super().ping()


def test_the_breaker_opens_after_repeated_outages_and_recovers_through_a_probe(tmp_path: Path) -> None:
    now = [0.0]
    probes: list[Callable[[], None]] = []
    inner = FlakyStore(tmp_path / "q")
    store = CircuitBreakerStore(inner, failures=3, cooldown_s=5, clock=lambda: now[0], spawn=probes.append)
    inner.down = True
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            store.count(IMAGES)
    assert store.state == "open" and inner.calls == 3
    with pytest.raises(BreakerOpen):
        store.count(IMAGES)
    assert inner.calls == 3 and not probes  # failed fast: the store was not asked
    now[0] = 6.0
    with pytest.raises(BreakerOpen):
        store.count(IMAGES)  # the cooldown is over: a probe starts, and this caller still fails fast
    assert store.state == "half_open" and len(probes) == 1 and inner.calls == 3
    with pytest.raises(BreakerOpen):
        store.count(IMAGES)  # while it runs, no second probe
    probes.pop()()  # the probe: still down
    assert inner.calls == 4 and store.state == "open"
    now[0] = 12.0
    inner.down = False
    with pytest.raises(BreakerOpen):
        store.count(IMAGES)
    probes.pop()()  # it answers: closed
    assert store.state == "closed" and store.count(IMAGES) == 0
    assert store.root == inner.root  # the adapter's own attributes show through


def test_the_breakers_probe_runs_beside_the_callers(tmp_path: Path) -> None:
    """A real thread: the caller that starts the probe is answered at once, not after the store's timeout."""
    inner = FlakyStore(tmp_path / "q")
    release = threading.Event()
    slow_ping = inner.ping

    def hung_ping() -> None:
        release.wait(10)
        slow_ping()

    inner.ping = hung_ping  # type: ignore[method-assign]
    store = CircuitBreakerStore(inner, failures=1, cooldown_s=0)
    inner.down = True
    with pytest.raises(StoreUnavailable):
        store.count(IMAGES)
    started = time.monotonic()
    with pytest.raises(BreakerOpen):
        store.count(IMAGES)
    assert time.monotonic() - started < 1.0
    inner.down = False
    release.set()
    deadline = time.monotonic() + 10
    while store.state != "closed" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.state == "closed" and store.count(IMAGES) == 0


def test_an_open_breaker_answers_a_search_before_its_text_is_encoded(library: Library) -> None:
    """A store known to be down costs a search nothing: 503 at once, no text-tower pass spent on it."""
    store = CircuitBreakerStore(library.store, failures=1, cooldown_s=60)
    client = library.app(store).test_client()
    assert client.get("/api/search", query_string={"q": "first"}).status_code == 200
    store._record(StoreUnavailable("timed out"))  # as a timed-out call would
    assert store.state == "open"
    wonders = client.application.extensions["wonders"]
    misses = wonders.cache.misses
    assert_error(client.get("/api/search", query_string={"q": "never encoded"}), 503)
    assert wonders.cache.misses == misses, "the text was encoded for an answer that could not come"


def test_a_remote_store_is_opened_behind_the_breaker(settings: Settings) -> None:
    remote = open_store(settings.model_copy(update={"qdrant_url": "http://127.0.0.1:9"}))
    assert isinstance(remote, CircuitBreakerStore) and isinstance(remote.inner, ServerStore)
    assert not isinstance(open_store(settings), CircuitBreakerStore)  # in-process: nothing to hang


@pytest.mark.slow
def test_liveness_answers_while_every_thread_waits_on_a_hung_store(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    hung = HungQdrant()
    env = {
        "CLIP_MODEL": str(tiny_model_dir),
        "CLIP_DEVICE": "cpu",
        "CLIP_PRECISION": "fp32",
        "DATA_DIR": str(tmp_path / "data"),
        "IMAGES_DIR": str(tmp_path / "images"),
        "QDRANT_URL": f"http://127.0.0.1:{hung.port}",
        "QDRANT_TIMEOUT_S": "20",
        "GUNICORN_THREADS": "2",
        "WEB_CONCURRENCY": "1",
        "TORCH_THREADS": "1",
    }
    server = start_gunicorn(env, tmp_path / "gunicorn.log", wait_ready=False)
    finished: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while "model ready" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)  # readiness would ask the hung store: the log says when the model is there

        def search() -> None:
            with contextlib.suppress(requests.RequestException):
                requests.get(f"{server.url}/api/search", params={"q": "x"}, timeout=60)
            finished.append(1)

        searches = [threading.Thread(target=search, daemon=True) for _ in range(8)]
        for thread in searches:
            thread.start()
        time.sleep(1.0)  # let them reach the hung store
        health = [requests.get(f"{server.url}/api/health", timeout=15) for _ in range(5)]
        assert all(r.status_code == 200 for r in health)
        assert not finished, "liveness waited for the hung searches"
    finally:
        server.stop()
        hung.close()


# -- 8. a read-only data folder ---------------------------------------------------------------------------
@pytest.mark.slow
def test_an_unwritable_data_folder_stops_gunicorn_with_one_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {
        **os.environ,
        "CLIP_MODEL": str(tiny_model_dir),
        "DATA_DIR": str(blocker / "data"),  # cannot be created: even root cannot write there
        "PORT": str(__import__("devtools.live_server").live_server.free_port()),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "api/gunicorn_conf.py", "api.wsgi:app"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "DATA_DIR" in done.stderr and "not writable" in done.stderr and "Traceback" not in done.stderr


def test_a_thumbnail_that_cannot_be_written_is_served_from_memory(
    library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import search.service

    def read_only(*args: Any) -> Path:
        raise OSError(30, "Read-only file system")

    shutil.rmtree(library.settings.thumbs_dir)
    monkeypatch.setattr(search.service, "write_thumb", read_only)
    response = library.app().test_client().get(f"/images/{library.ids['p0.jpg']}/thumb")
    assert response.status_code == 200 and response.get_data()[:3] == b"\xff\xd8\xff"


# -- 9. a hand-off whose service restarts ---------------------------------------------------------------
class RestartingService:
    """A stand-in service: the first token stops working mid-run (a restarted worker with a new token
    that lost the job); the client must re-read the token and submit again."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.token = "old"
        self.posts = 0
        self.polls = 0
        (data_dir / handoff.TOKEN_FILE).write_text(self.token)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.headers.get(handoff.TOKEN_HEADER) != outer.token:
                    self._json(403, {})
                    return
                outer.polls += 1
                if outer.posts == 1 and outer.polls == 2:  # the worker restarts here
                    outer.token = "new"
                    (outer.data_dir / handoff.TOKEN_FILE).write_text("new")
                    self._json(403, {})
                    return
                state = "running" if outer.posts == 1 else ("done" if outer.posts >= 2 else "idle")
                if outer.token == "new" and outer.posts == 1:
                    state = "idle"
                self._json(200, {"state": state, "summary": "new: 1", "done": 0, "total": 1})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.posts += 1
                self._json(202, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_a_handoff_whose_service_restarts_is_submitted_again(tmp_path: Path) -> None:
    stand_in = RestartingService(tmp_path)
    try:
        service = handoff.RunningService(stand_in.url, "old", data_dir=tmp_path)
        service.start([tmp_path], recreate=False)
        final = service.follow(show_progress=False, poll_s=0.01)
    finally:
        stand_in.server.shutdown()
    assert final["state"] == "done" and stand_in.posts == 2


def test_a_handoff_whose_service_never_comes_back_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.__main__ import _ingest_in_service

    monkeypatch.setattr(handoff, "RECONNECT_S", 0.3)
    stand_in = RestartingService(tmp_path)
    service = handoff.RunningService(stand_in.url, "old", data_dir=tmp_path)
    stand_in.server.shutdown()
    stand_in.server.server_close()
    args = type("Args", (), {"recreate": False, "prune": False, "quiet": True})()
    assert _ingest_in_service(service, [tmp_path], args) == 1  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_full_disk_during_ingest_is_one_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import core.model
    import ingest.pipeline
    from ingest.__main__ import _ingest_here

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core.model, "load_clip", lambda settings: object())
    monkeypatch.setattr(ingest.pipeline, "run_ingest", full)
    args = type(
        "Args", (), {"recreate": False, "prune": False, "quiet": True, "no_crosscheck": True, "part": None}
    )()
    assert _ingest_here(settings, [settings.images_dir], args) == 1  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "No space left on device" in err and len(err.strip().splitlines()) == 1


# -- 14. DNS rebinding ------------------------------------------------------------------------------------
def test_requests_for_another_host_name_are_refused(library: Library) -> None:
    client = library.app().test_client()
    assert_error(client.get("/api/health", headers={"Host": "attacker.example"}), 421, "unknown_host")
    assert_error(client.get("/api/search?q=x", headers={"Host": "attacker.example:8000"}), 421)
    for host in ("localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 200, host
    configured = library.settings.model_copy(update={"allowed_hosts": "photos.example, Other.example"})
    client = create_app(configured, library.encoder, library.store).test_client()
    assert client.get("/api/health", headers={"Host": "photos.example"}).status_code == 200
    assert client.get("/api/health", headers={"Host": "other.example:443"}).status_code == 200
    assert_error(client.get("/api/health", headers={"Host": "attacker.example"}), 421)


# -- 3 and 10. the served process, over real sockets -------------------------------------------------------
@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[LiveServer]:
    """gunicorn as `make run` serves, with two threads and short header and body timeouts."""
    root = tmp_path_factory.mktemp("strict")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        clip_model=str(tiny_model_dir),
        clip_device="cpu",
        clip_precision="fp32",
        images_dir=root / "images",
        data_dir=root / "data",
    )
    write(settings.images_dir / "a.jpg", jpeg_bytes(photo(5)))
    store = EmbeddedStore(settings.shard_dir)
    run_ingest(
        settings, ClipModel(str(tiny_model_dir), device="cpu", precision="fp32"), store, show_progress=False
    )
    store.close()
    env = {
        "CLIP_MODEL": str(tiny_model_dir),
        "CLIP_DEVICE": "cpu",
        "CLIP_PRECISION": "fp32",
        "IMAGES_DIR": str(settings.images_dir),
        "DATA_DIR": str(settings.data_dir),
        "TORCH_THREADS": "1",
        "GUNICORN_THREADS": "2",
        "REQUEST_HEADER_TIMEOUT_S": "2",
        "REQUEST_BODY_TIMEOUT_S": "3",
        "MAX_UPLOAD_MB": "1",
    }
    server = start_gunicorn(env, root / "gunicorn.log")
    server.extra["data"] = settings.data_dir
    yield server
    server.stop()


def _connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    return sock


_LEFTOVER: dict[int, bytes] = {}


def _response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) from the socket; what follows it is kept."""
    data = _LEFTOVER.pop(sock.fileno(), b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    if len(body) > length:
        _LEFTOVER[sock.fileno()] = body[length:]
    return head + b"\r\n\r\n" + body[:length]


@pytest.mark.slow
def test_slow_clients_hold_no_thread_and_run_out_of_time(strict_server: LiveServer) -> None:
    slow = []
    for _i in range(6):  # three times the threads: slow headers ...
        sock = _connect(strict_server)
        sock.sendall(b"GET /api/search?q=x HTTP/1.1\r\nHost: localhost\r\n")
        slow.append(sock)
    for _i in range(4):  # ... and slow bodies
        sock = _connect(strict_server)
        sock.sendall(b"POST /api/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n")
        sock.sendall(b'Content-Length: 100\r\n\r\n{"q":')
        slow.append(sock)
    try:
        for _ in range(4):
            answer = requests.get(f"{strict_server.url}/api/search", params={"q": "tower"}, timeout=15)
            assert answer.status_code == 200
        for sock in slow:  # after the header / body timeout: a 408 in the error shape, then closed
            response = _response(sock)
            assert response.startswith(b"HTTP/1.1 408"), response[:200]
            assert b'"code":"request_timeout"' in response and b"Connection: close" in response
    finally:
        for sock in slow:
            sock.close()


@pytest.mark.slow
def test_transfer_codings_other_than_chunked_are_refused(strict_server: LiveServer) -> None:
    for coding in (b"gzip, chunked", b"chunked, chunked", b"identity", b"x"):
        with _connect(strict_server) as sock:
            sock.sendall(
                b"POST /api/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: " + coding + b'\r\n\r\n5\r\n{"q":\r\n0\r\n\r\n'
            )
            response = _response(sock)
        assert response.startswith(b"HTTP/1.1 501"), (coding, response[:200])
    with _connect(strict_server) as sock:  # plain chunked is read in full and answered
        body = b'{"q": "tower"}'
        sock.sendall(
            b"POST /api/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % 4
            + body[:4]
            + b"\r\n"
            + b"%x\r\n" % (len(body) - 4)
            + body[4:]
            + b"\r\n0\r\n\r\n"
        )
        assert _response(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.slow
def test_the_connection_stays_usable_after_an_early_413(strict_server: LiveServer) -> None:
    fields = "&".join(f"f{i}=v" for i in range(10_000)).encode()
    with _connect(strict_server) as sock:
        sock.sendall(
            b"POST /api/search/image HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n"
            % len(fields)
            + fields
        )
        first = _response(sock)
        assert first.split(b"\r\n")[0].split(b" ")[1] in (b"400", b"413", b"415"), first[:200]
        if b"Connection: close" in first:
            return  # said, so the client knows
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200")
    big = b"x" * (3 << 20)  # over the 1 MB limit: answered 413 by the buffering layer, closing
    with _connect(strict_server) as sock:
        sock.sendall(
            b"POST /api/search/image HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: %d\r\n\r\n" % len(big)
        )
        sock.sendall(big)
        response = _response(sock)
        assert response.startswith(b"HTTP/1.1 413") and b"Connection: close" in response


@pytest.mark.slow
def test_pipelined_requests_are_each_answered(strict_server: LiveServer) -> None:
    with _connect(strict_server) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n" * 3)
        for _ in range(3):
            assert _response(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.slow
def test_a_recycled_worker_answers_the_request_it_has_begun_reading(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """A worker replaced after its last request (--max-requests) still answers a request it is reading."""
    env = {
        "CLIP_MODEL": str(tiny_model_dir),
        "CLIP_DEVICE": "cpu",
        "CLIP_PRECISION": "fp32",
        "DATA_DIR": str(tmp_path / "data"),
        "IMAGES_DIR": str(tmp_path / "images"),
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "2",
        "GUNICORN_CMD_ARGS": "--max-requests 2",
        "TORCH_THREADS": "1",
    }
    server = start_gunicorn(env, tmp_path / "gunicorn.log", wait_ready=False)
    try:
        # start_gunicorn's own /api/health was the worker's first request: `last` below is its second.
        with _connect(server) as begun, _connect(server) as last:
            begun.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n")
            time.sleep(0.3)
            last.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert _response(last).startswith(b"HTTP/1.1 200")  # its last: the worker is stopping now
            time.sleep(1.5)  # past gthread's once-a-second check of pending connections
            begun.sendall(b"\r\n")
            answer = _response(begun)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert b"connection: close" in answer.lower()
    finally:
        server.stop()


@pytest.mark.slow
def test_the_admin_token_is_removed_when_the_service_stops(strict_server: LiveServer) -> None:
    token = Path(str(strict_server.extra["data"])) / handoff.TOKEN_FILE
    assert token.is_file()
    strict_server.stop()
    assert not token.exists()


# -- 13. nginx's own answers --------------------------------------------------------------------------------
def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        return _response(sock)


@needs_nginx
def test_nginx_answers_its_own_errors_in_the_shape(nginx_stub: Any) -> None:
    url = nginx_stub.url
    cases = {
        400: b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        405: b"POST /index.html HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
        414: b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
        501: b"POST /api/search HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n",
    }
    for status, request in cases.items():
        response = _raw(url, request)
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d" % status), (status, head[:200])
        assert b"application/json" in head and json.loads(body)["error"]["code"], (status, body[:200])
    api = requests.get(f"{url}/api/health", timeout=10)
    assert api.raw.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    redirect = _raw(url, b"GET /api HTTP/1.1\r\nHost: attacker.example\r\n\r\n")
    location = next(line for line in redirect.split(b"\r\n") if line.lower().startswith(b"location:"))
    assert b"attacker.example" not in location and location.split(b":", 1)[1].strip() == b"/api/"


# -- the measured attacks, long: `make test-chaos` -----------------------------------------------------------
@pytest.mark.chaos
def test_the_measured_attacks_hold(tmp_path: Path) -> None:
    """bench/attacks.py against a real gunicorn: slow clients, worst-case uploads, a hung store."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.attacks", "--out", str(tmp_path / "attacks.json")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads((tmp_path / "attacks.json").read_text())
    assert figures["slow_clients"]["search_p99_ms"] < 1000, figures
    assert figures["uploads"]["peak_above_idle_mb"] < 1024, figures
    assert figures["uploads"]["after_10s_above_idle_mb"] < 200, figures
    assert figures["hung_store"]["health_max_ms"] < 100, figures
