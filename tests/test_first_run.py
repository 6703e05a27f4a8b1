"""Issue 13: what a newcomer meets on the first run and in everyday use, over HTTP, the CLI and make.

Each test names the item of issue 13 it covers. Nothing here touches the network: the first-run
download is faked or pointed at a closed port."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from api.factory import create_app
from core.model import ClipModel
from core.settings import Settings
from core.store import open_store
from tests.conftest import REPO
from tests.image_factory import jpeg_bytes, photo, write

pytest_plugins = ["tests.api_helpers"]


def _library(images: Path, count: int, size: tuple[int, int] = (320, 240), first: int = 7000) -> None:
    for i in range(count):
        write(images / f"folder_{i % 2}" / f"photo_{i}.jpg", jpeg_bytes(photo(first + i, size)))


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/w/api.php"


def _wait(predicate: Any, timeout: float = 90.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout} s")


def _live_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "CLIP_MODEL": settings.clip_model,
        "CLIP_DEVICE": "cpu",
        "CLIP_PRECISION": "fp32",
        "IMAGES_DIR": str(settings.images_dir),
        "DATA_DIR": str(settings.data_dir),
        "TORCH_THREADS": "1",
        "ENCODE_BATCH_SIZE": "4",
        **extra,
    }


# ------------------------------------------------------------------------------------- 1: empty library


def test_an_empty_library_answers_empty_pages_with_a_reason_not_503(
    make_settings: Any, encoder: ClipModel
) -> None:
    settings = make_settings()
    store = open_store(settings)
    try:
        client = create_app(settings, encoder, store).test_client()
        answer = client.get("/api/search", query_string={"q": "hot air balloons"})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.get_json()["results"] == [] and answer.get_json()["reason"] == "empty_library"
        posted = client.post("/api/search", json={"q": "the pyramids"})
        assert posted.status_code == 200 and posted.get_json()["reason"] == "empty_library"
        stats = client.get("/api/stats")
        assert stats.status_code == 200 and stats.get_json()["points"] == 0
        assert set(stats.get_json()["classes"].values()) == {0}
        assert client.get("/api/classes").status_code == 200
        assert client.get(f"/api/images/{uuid.uuid4()}/similar").status_code == 404
        assert client.get(f"/api/images/{uuid.uuid4()}").status_code == 404
        good = {"image": (io.BytesIO(jpeg_bytes(photo(5, (64, 64)))), "a.jpg")}
        by_photo = client.post("/api/search/image", data=good)
        assert by_photo.status_code == 200 and by_photo.get_json()["reason"] == "empty_library"
        bad = {"image": (io.BytesIO(b"not an image" * 20), "b.jpg")}
        assert client.post("/api/search/image", data=bad).status_code == 415  # still checked
    finally:
        store.close()


# ------------------------------------------------------------------------------------- 2: no hub access


def test_an_unreachable_model_is_one_paragraph_and_a_non_zero_exit(
    settings: Settings, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    _library(settings.images_dir, 1)
    env = {**subprocess_env, "CLIP_MODEL": "nobody/no-such-model-anywhere"}
    done = subprocess.run(
        [sys.executable, "-m", "ingest", "--quiet"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-2000:]
    assert "Could not load the model 'nobody/no-such-model-anywhere' (CLIP_MODEL)" in done.stderr
    assert "local folder" in done.stderr and "SentenceTransformer(" in done.stderr


def test_the_server_without_its_model_exits_non_zero_with_the_paragraph(
    settings: Settings, tmp_path: Path
) -> None:
    from devtools.live_server import REPO as ROOT
    from devtools.live_server import free_port

    env = {
        **{k: v for k, v in __import__("os").environ.items() if not k.startswith(("QDRANT_", "CLIP_"))},
        **_live_env(settings, CLIP_MODEL="nobody/no-such-model-anywhere"),
        "PORT": str(free_port()),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        "GUNICORN_ACCESS_LOG": "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "api/gunicorn_conf.py", "api.wsgi:app"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    assert output.count("Could not load the model 'nobody/no-such-model-anywhere' (CLIP_MODEL)") == 1


# ------------------------------------------------------------- 3: serving at once, indexing in the background


def test_the_service_serves_at_once_and_indexes_its_library_itself(
    settings: Settings, tmp_path: Path
) -> None:
    from devtools.live_server import start_gunicorn

    _library(settings.images_dir, 10)
    server = start_gunicorn(
        _live_env(settings, INDEX_ON_START="true", GUNICORN_ACCESS_LOG="-"), tmp_path / "gunicorn.log"
    )
    try:
        first = requests.get(f"{server.url}/api/search", params={"q": "a photo"}, timeout=30)
        assert first.status_code == 200  # answered while (or before) the library is indexed

        def finished() -> dict[str, Any] | None:
            status = requests.get(f"{server.url}/api/ingest", timeout=30).json()
            return status if status["state"] == "done" else None

        status = _wait(finished, what="the background indexing")
        assert status["new"] == 10 and status["done"] == status["total"] == 10
        assert status["fetch"] == {"state": "off"}  # the library was not empty
        found = requests.get(f"{server.url}/api/search", params={"q": "a photo", "k": 20}, timeout=30).json()
        assert len(found["results"]) == 10
        assert requests.get(f"{server.url}/api/stats", timeout=30).json()["points"] == 10
        for _ in range(3):
            requests.get(f"{server.url}/api/ready", timeout=30)
        log = server.log()
    finally:
        server.stop()
    # 10: the terminal says where to go and how far the indexing is, and nothing a user cannot act on.
    assert "Wonders is ready: open http://localhost:" in log
    assert "indexing: 10 of 10 photos" in log
    assert "GET /api/search" in log  # the access log is on ...
    assert "GET /api/ready" not in log and "GET /api/ingest" not in log  # ... without the polls
    assert "Could not load library with" not in log and "initializing a new" not in log
    assert "Loading weights" not in log


def test_a_text_query_goes_between_the_passes_of_an_image_batch(encoder: ClipModel) -> None:
    """3: while the service indexes, a text query waits for one short pass, never for a whole batch."""
    from core.model import model_thread

    order: list[str] = []
    real_forward = encoder._forward
    images = [photo(9000 + i, (64, 64)) for i in range(16)]
    text_thread: threading.Thread | None = None

    def forward(inputs: list[Any], batch_size: int) -> Any:
        nonlocal text_thread
        kind = "text" if isinstance(inputs[0], str) else f"images:{len(inputs)}"
        order.append(kind)
        if kind.startswith("images") and text_thread is None:
            # A user searches while the first pass runs: the job is queued behind it.
            text_thread = threading.Thread(target=lambda: encoder.text.encode_texts(["a castle"]))
            text_thread.start()
            _wait(lambda: any(not j.background for j in model_thread()._jobs), 10, "the text job queued")
        return real_forward(inputs, batch_size)

    encoder.text.encode_texts(["a query was asked just now"])  # queries are coming in
    encoder._forward = forward  # type: ignore[method-assign]
    try:
        vectors = encoder.image.encode_images(images, batch_size=16, background=True)
    finally:
        del encoder._forward
    assert text_thread is not None
    text_thread.join(10)
    assert vectors.shape[0] == 16
    assert order[:2] == ["images:4", "text"], order  # the text went after the first short pass
    assert order.count("images:4") == 4


# ------------------------------------------------------------------------------------- 6: thumbnails


def test_thumbnails_are_cut_from_the_original_not_the_model_input(
    make_settings: Any, encoder: ClipModel
) -> None:
    from core.thumbnails import thumb_path
    from ingest.pipeline import run_ingest
    from tests.api_helpers import point_id_of

    settings = make_settings(thumb_size=256)
    path = write(settings.images_dir / "big.jpg", jpeg_bytes(photo(77, (1600, 1200))))
    store = open_store(settings)
    try:
        run_ingest(settings, encoder, store, show_progress=False)
    finally:
        store.close()
    with Image.open(thumb_path(settings.thumbs_dir, point_id_of(path))) as thumb:
        assert max(thumb.size) == 256, thumb.size  # not 2 x the tiny model's input


# ------------------------------------------------------------------------------------- 7: make up/down/logs


@pytest.fixture
def fake_docker(tmp_path: Path) -> Any:
    """A `docker` on PATH: `mode` "no-compose" answers like docker without the compose plugin."""
    folder = tmp_path / "bin"
    folder.mkdir()

    def make(mode: str) -> dict[str, str]:
        script = folder / "docker"
        if mode == "no-compose":
            script.write_text("#!/bin/sh\necho \"unknown shorthand flag: 'd' in -d\" >&2\nexit 125\n")
        else:
            script.write_text('#!/bin/sh\necho "docker $*" >> "$(dirname "$0")/calls"\nexit 0\n')
        script.chmod(0o755)
        env = {k: v for k, v in __import__("os").environ.items() if k != "QDRANT_API_KEY"}
        env["PATH"] = f"{folder}:{env['PATH']}"
        return env

    return make


@pytest.mark.parametrize("target", ["up", "down", "logs"])
def test_compose_targets_say_plainly_that_compose_is_missing(
    fake_docker: Any, target: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        ["make", "-s", "-C", str(REPO), target], env=fake_docker("no-compose"), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "unknown shorthand flag" not in done.stdout + done.stderr
    assert "install Docker with its compose plugin" in done.stdout


def test_make_up_checks_the_qdrant_key_first(fake_docker: Any, tmp_path: Path) -> None:
    env = fake_docker("compose")
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "Makefile").write_text((REPO / "Makefile").read_text())
    done = subprocess.run(
        ["make", "-s", "-C", str(clone), "up"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "Set QDRANT_API_KEY in .env first" in done.stdout
    assert "up -d" not in (tmp_path / "bin" / "calls").read_text()  # compose was never asked to start
    (clone / ".env").write_text("QDRANT_API_KEY=abc123\n")
    done = subprocess.run(
        ["make", "-s", "-C", str(clone), "up"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "docker compose up -d --build" in (tmp_path / "bin" / "calls").read_text()


# ------------------------------------------------------------------- 8, 9: a second make run, make crosscheck


@pytest.fixture
def running(settings: Settings, tmp_path: Path) -> Any:
    """A live service over a small indexed library (its own data folder)."""
    from devtools.live_server import start_gunicorn

    _library(settings.images_dir, 4)
    server = start_gunicorn(_live_env(settings, INDEX_ON_START="true"), tmp_path / "gunicorn.log")
    _wait(
        lambda: requests.get(f"{server.url}/api/ingest", timeout=30).json()["state"] == "done",
        what="the indexing",
    )
    yield server
    server.stop()


def test_a_second_make_run_says_where_the_service_is_and_exits_0(running: Any) -> None:
    env = {**running.env, "PORT": str(running.port)}
    started = time.monotonic()
    done = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "run", f"PY={sys.executable}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Wonders is already running: open http://localhost:{running.port}" in done.stdout
    assert "Address already in use" not in done.stdout + done.stderr
    assert time.monotonic() - started < 60  # it did not start gunicorn (which retries for 5 s per bind)


def test_make_run_serves_without_ingesting_first() -> None:
    done = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "run"], cwd=REPO, capture_output=True, text=True
    )
    assert "-m ingest" not in done.stdout and "-m api.launch" in done.stdout


def test_make_crosscheck_is_handed_to_the_running_service(running: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ingest.crosscheck_cli", "--samples", "4"],
        cwd=REPO, env=running.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "runs the cross-check on its store" in done.stdout
    assert json.loads((Path(running.env["DATA_DIR"]) / "crosscheck.json").read_text())


# ------------------------------------------------------------------------------------- 12: the API contract


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/stats?x=1"), ("GET", "/api/classes?x=1"), ("GET", "/api/health?verbose=1"),
     ("GET", "/api/ingest?x=1"), ("POST", "/api/classify?k=5")],
)  # fmt: skip
def test_unknown_parameters_are_a_400_everywhere(client: Any, method: str, path: str) -> None:
    from tests.api_helpers import assert_error, upload

    data = upload(jpeg_bytes(photo(1, (64, 64)))) if method == "POST" else None
    answer = client.open(path, method=method, data=data)
    error = assert_error(answer, 400, "invalid_parameter")
    assert "takes no query parameters" in error["message"]


def test_unknown_parameters_on_an_image_are_a_400(client: Any, api_library: Any) -> None:
    from tests.api_helpers import assert_error

    point_id = next(iter(api_library.ids.values()))
    assert client.get(f"/api/images/{point_id}").status_code == 200
    assert_error(client.get(f"/api/images/{point_id}?foo=1"), 400, "invalid_parameter")


def test_a_bad_json_body_is_explained_in_words(client: Any) -> None:
    from tests.api_helpers import assert_error

    for body in ("[1, 2]", '"text"', "{not json"):
        error = assert_error(client.post("/api/search", data=body, content_type="application/json"), 400)
        assert "[" not in error["message"] and "'" not in error["message"], error["message"]


def test_an_upload_without_the_image_field_names_it(client: Any) -> None:
    from tests.api_helpers import assert_error

    answer = client.post("/api/classify", data={"photo": (io.BytesIO(b"x"), "a.jpg")})
    error = assert_error(answer, 400)
    assert "multipart/form-data file field 'image'" in error["message"]


def test_openapi_lists_413_and_415_for_uploads(client: Any) -> None:
    spec = client.get("/api/openapi.json").get_json()
    for path in ("/api/search/image", "/api/classify"):
        responses = spec["paths"][path]["post"]["responses"]
        assert {"413", "415"} <= set(responses), (path, sorted(responses))


def test_the_api_page_is_swagger_ui_from_local_assets(client: Any) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/docs/") for s in sources), sources
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200 and len(asset.get_data()) > 0, source
    assert "<script>" not in html  # no inline script: the CSP would refuse it


# ------------------------------------------------------------------------------------- 13: bench output


def test_quick_bench_writes_beside_the_published_results() -> None:
    from bench.__main__ import RESULTS, _parser
    from bench.report import measured

    assert _parser().parse_args(["--quick"]).out is None  # main() then picks bench/results/quick/
    text = (REPO / "bench" / "__main__.py").read_text()
    assert 'RESULTS / "quick" if args.quick else RESULTS' in text
    assert (REPO / ".gitignore").read_text().count("bench/results/quick/") == 1
    assert RESULTS.name == "results"
    assert measured(-760.0, False, "freed meanwhile").startswith("not measurable in this run")
    assert measured(0.934, True, "x", 3) == "0.934"


# ------------------------------------------------------------------------------------- 15: ingest output


def test_a_bad_file_is_not_decoded_again_until_it_changes(
    settings: Settings, encoder: ClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest import decode_workers, pipeline

    _library(settings.images_dir, 2)
    bad = write(settings.images_dir / "broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    decoded: list[str] = []
    real = decode_workers.decode_file

    def counting(path: Path, sha256: str, options: Any) -> Any:
        decoded.append(path.name)
        return real(path, sha256, options)

    # Decoding runs in threads on this machine's 2 cores (DECODE_WORKERS=0), so the patch is seen.
    monkeypatch.setattr(decode_workers, "decode_file", counting)
    store = open_store(settings)
    try:
        first = pipeline.run_ingest(settings, encoder, store, show_progress=False)
        assert first.new == 2 and [Path(p).name for p, _ in first.skipped] == ["broken.jpg"]
        decoded.clear()
        second = pipeline.run_ingest(settings, encoder, store, show_progress=False)
        assert decoded == []  # the bad bytes are remembered by their hash
        assert [Path(p).name for p, _ in second.skipped] == ["broken.jpg"]
        bad.write_bytes(jpeg_bytes(photo(4242, (200, 150))))  # fixed: tried again, and indexed
        third = pipeline.run_ingest(settings, encoder, store, show_progress=False)
        assert decoded == ["broken.jpg"] and third.new == 1 and third.skipped == []
    finally:
        store.close()


def test_summary_speaks_english_for_one_image() -> None:
    from ingest.pipeline import IngestReport

    text = IngestReport(missing=1, total_points=1).summary()
    assert "1 image indexed has no file" in text and "1 indexed images" not in text
    assert "collection now holds 1 image" in text


def test_the_hand_off_bar_counts_only_what_it_saw_happen(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.handoff import RunningService

    states = iter(
        [
            {"state": "running", "done": 600_000, "total": 600_010},
            {"state": "running", "done": 600_004, "total": 600_010},
            {"state": "done", "done": 600_010, "total": 600_010},
        ]
    )
    service = RunningService("http://127.0.0.1:9", "token")
    monkeypatch.setattr(service, "status", lambda: next(states))
    service.follow(show_progress=True, poll_s=0.2)
    rates = [float(r) for r in re.findall(r"([\d.]+)img/s", capsys.readouterr().err)]
    assert rates and max(rates) < 1000, rates


# ------------------------------------------------------------------------------------- 16: the README


def test_readme_tells_a_user_first() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first = readme.split("## ")[0] + readme.split("## ")[1]  # the top and the first section
    for needed in ("make run", "make test", "IMAGES_DIR=~/Pictures make run", "Ctrl+C", "127.0.0.1"):
        assert needed in readme, needed
    for needed in (
        "make serve",
        "make clean",
        "PYTHON=",
        "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu",
    ):
        assert needed in readme, needed
    assert "1.8 GB" in first and "1.7 GB" in first and "3 GB" in first  # what to expect, up front
    assert "bench/README.md" in readme and (REPO / "bench" / "README.md").is_file()
    assert "oneDNN" not in readme  # the benchmark internals moved out
    # requirements.txt's pointer leads to a README section that exists.
    pointer = re.search(r'README, "([^"]+)"', (REPO / "requirements.txt").read_text())
    assert pointer and f"## {pointer.group(1)}" in readme


# ------------------------------------------------------------------ 17: the landmark library fetched at start


def test_an_empty_library_is_filled_in_the_background_and_indexed(
    make_settings: Any, encoder: ClipModel
) -> None:
    from ingest.autostart import FetchOutcome, LibraryIndexer
    from ingest.job import IngestJob
    from search import SearchService

    settings = make_settings()
    store = open_store(settings)

    def fake_fetch(settings: Settings, done: threading.Event) -> FetchOutcome:
        _library(settings.images_dir, 3)  # what `python -m dataset` would write
        done.set()
        return FetchOutcome(True)

    try:
        service = SearchService(settings, encoder=encoder, store=store)
        indexer = LibraryIndexer(service, IngestJob(service), fetcher=fake_fetch)
        indexer.start()
        indexer.wait(120)
        status = indexer.status()
        assert status["fetch"] == {"state": "done"} and status["state"] == "done"
        assert store.count("images") == 3
    finally:
        store.close()


def test_offline_the_first_run_download_fails_quickly_and_says_so(
    make_settings: Any, encoder: ClipModel
) -> None:
    from ingest.autostart import LibraryIndexer
    from ingest.job import IngestJob
    from search import SearchService

    settings = make_settings(wikimedia_api_url=_closed_port_url())
    store = open_store(settings)
    try:
        service = SearchService(settings, encoder=encoder, store=store)
        indexer = LibraryIndexer(service, IngestJob(service))
        indexer.start()
        indexer.wait(300)
        fetch = indexer.status()["fetch"]
        assert fetch["state"] == "failed" and "could not be downloaded" in fetch["message"]
        assert not any(settings.images_dir.iterdir()) if settings.images_dir.exists() else True
    finally:
        store.close()
