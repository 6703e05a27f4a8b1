"""The real thing over HTTP: gunicorn serving the app with the tiny model, like `make run`.

`live_server` (conftest) serves a fixed library for the session; the ingest hand-off runs against an own
gunicorn over a copy of that library, since it adds a photo.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.api_helpers")

import http.client  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import requests  # noqa: E402

from core.ids import image_point_id, sha256_hex  # noqa: E402
from devtools.live_server import REPO, LiveServer, start_gunicorn  # noqa: E402
from ingest.handoff import TOKEN_FILE, TOKEN_HEADER  # noqa: E402
from tests.api_helpers import assert_error, point_id_of  # noqa: E402
from tests.image_factory import jpeg_bytes, photo, write  # noqa: E402

pytestmark = pytest.mark.slow
TIMEOUT = 60


def _files(data: bytes, name: str = "query.jpg") -> dict[str, Any]:
    return {"image": (name, data, "image/jpeg")}


def _library_photo(server: LiveServer, relative: str = "class_0/photo_0.jpg") -> tuple[bytes, str]:
    path = Path(str(server.extra["images"])) / relative
    return path.read_bytes(), point_id_of(path)


def _raw_get(server: LiveServer, path: str) -> SimpleNamespace:
    """GET a path exactly as written (no client-side normalization of `..` or `%2f`)."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return SimpleNamespace(status_code=response.status, content=response.read(), headers=response.headers)
    finally:
        connection.close()


def test_search_upload_and_classify_over_http(live_server: LiveServer) -> None:
    url = live_server.url
    text = requests.get(f"{url}/api/search", params={"q": "Кремль ночью 🏰", "k": 5}, timeout=TIMEOUT)
    assert text.status_code == 200 and len(text.json()["results"]) == 5
    long_query = "Собор Василия Блаженного на Красной площади " * 60
    posted = requests.post(f"{url}/api/search", json={"q": long_query, "k": 3}, timeout=TIMEOUT)
    assert posted.status_code == 200 and len(posted.json()["results"]) == 3

    data, point_id = _library_photo(live_server)
    found = requests.post(f"{url}/api/search/image", params={"k": 3}, files=_files(data), timeout=TIMEOUT)
    assert found.status_code == 200, found.text[:300]
    top = found.json()["results"][0]
    assert top["id"] == point_id and top["score"] > 0.99
    assert top["attribution"]["author"] == "Jane Doe"

    classified = requests.post(f"{url}/api/classify", files=_files(data), timeout=TIMEOUT)
    assert classified.status_code == 200, classified.text[:300]
    body = classified.json()
    assert len(body["top3"]) == 3 and body["label"]["id"] == body["top3"][0]["id"]
    assert sum(entry["confidence"] for entry in body["top3"]) <= 1.0 + 1e-6

    similar = requests.get(f"{url}/api/images/{point_id}/similar", params={"k": 100}, timeout=TIMEOUT).json()
    assert point_id not in [r["id"] for r in similar["results"]] and len(similar["results"]) == 11

    image = requests.get(f"{url}/images/{point_id}", timeout=TIMEOUT)
    assert image.status_code == 200 and image.content == data
    assert image.headers["Content-Type"] == "image/jpeg" and "immutable" in image.headers["Cache-Control"]
    thumb = requests.get(f"{url}/images/{point_id}/thumb", timeout=TIMEOUT)
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/jpeg"


@pytest.mark.parametrize(
    "path",
    [
        "/images/..%2f..%2f..%2fetc%2fpasswd",
        "/images/%2e%2e/",
        "/images/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/images/../../../etc/passwd",
        "/images//etc/passwd",
        "/images/%2Fetc%2Fpasswd",
        "/../../../etc/passwd",
        "/%2e%2e/%2e%2e/pyproject.toml",
        "/..%2fpyproject.toml",
        "//etc/passwd",
    ],
)
def test_path_traversal_over_http(live_server: LiveServer, path: str) -> None:
    response = _raw_get(live_server, path)
    assert b"root:" not in response.content and b"[project]" not in response.content
    assert_error(response, 404)


def test_concurrent_mixed_requests(live_server: LiveServer) -> None:
    url = live_server.url
    data, point_id = _library_photo(live_server, "class_1/photo_1.jpg")
    other = jpeg_bytes(photo(4321, (500, 400)))

    def client(worker: int) -> list[str]:
        failures = []
        with requests.Session() as session:
            calls = [
                lambda: session.get(
                    f"{url}/api/search", params={"q": f"mountain lake {worker}"}, timeout=TIMEOUT
                ),
                lambda: session.post(f"{url}/api/search/image", files=_files(data), timeout=TIMEOUT),
                lambda: session.post(f"{url}/api/classify", files=_files(other), timeout=TIMEOUT),
                lambda: session.get(f"{url}/api/images/{point_id}/similar", timeout=TIMEOUT),
                lambda: session.post(
                    f"{url}/api/search", json={"q": f"башня {worker}", "k": 4}, timeout=TIMEOUT
                ),
                lambda: session.get(f"{url}/images/{point_id}/thumb", timeout=TIMEOUT),
            ]
            for round_ in range(2):
                for index, call in enumerate(calls):
                    try:
                        response = call()
                    except requests.RequestException as err:
                        failures.append(f"worker {worker} call {index}: {err}")
                        continue
                    if response.status_code != 200:
                        failures.append(
                            f"worker {worker} round {round_} call {index}: {response.status_code}"
                        )
                    elif index == 1 and response.json()["results"][0]["id"] != point_id:
                        failures.append(f"worker {worker}: image search lost its top hit")
        return failures

    with ThreadPoolExecutor(max_workers=8) as pool:
        failures = [failure for result in pool.map(client, range(8)) for failure in result]
    assert failures == [], failures
    assert live_server.process.poll() is None


def test_admin_endpoint_refuses_requests_without_the_token(live_server: LiveServer) -> None:
    url = f"{live_server.url}/api/admin/ingest"
    assert_error(requests.get(url, timeout=TIMEOUT), 403, "forbidden")
    assert_error(requests.post(url, json={}, timeout=TIMEOUT), 403, "forbidden")
    assert_error(requests.get(url, headers={TOKEN_HEADER: "guess"}, timeout=TIMEOUT), 403, "forbidden")
    assert_error(requests.post(url, json={}, headers={TOKEN_HEADER: ""}, timeout=TIMEOUT), 403, "forbidden")
    token = (Path(str(live_server.extra["data"])) / TOKEN_FILE).read_text(encoding="utf-8").strip()
    allowed = requests.get(url, headers={TOKEN_HEADER: token}, timeout=TIMEOUT)
    assert allowed.status_code == 200 and "state" in allowed.json()


def test_make_ingest_hands_off_to_the_running_service(live_library: dict[str, Any], tmp_path: Path) -> None:
    images, data = tmp_path / "images", tmp_path / "data"
    shutil.copytree(Path(str(live_library["images"])), images)
    shutil.copytree(Path(str(live_library["data"])), data, ignore=shutil.ignore_patterns(TOKEN_FILE))
    env = {**live_library["env"], "IMAGES_DIR": str(images), "DATA_DIR": str(data)}  # type: ignore[dict-item]
    server = start_gunicorn(env, tmp_path / "gunicorn.log")
    try:
        pid = server.process.pid
        before = requests.get(f"{server.url}/api/stats", timeout=TIMEOUT).json()["points"]
        fresh = jpeg_bytes(photo(90_001, (480, 360)))
        write(images / "new" / "fresh.jpg", fresh)

        result = subprocess.run(
            [sys.executable, "-m", "ingest"],
            env=server.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "handing the ingest to it" in result.stdout, output
        assert "open in another process" not in output and "Traceback" not in output, output

        found = requests.post(f"{server.url}/api/search/image", files=_files(fresh), timeout=TIMEOUT)
        assert found.status_code == 200, found.text[:300]
        top = found.json()["results"][0]
        assert top["id"] == image_point_id(sha256_hex(fresh)) and top["score"] > 0.99
        stats = requests.get(f"{server.url}/api/stats", timeout=TIMEOUT).json()
        assert stats["points"] == before + 1
        assert stats["crosscheck"] is not None and stats["crosscheck"]["points"] == before + 1
        meta = requests.get(f"{server.url}/api/images/{top['id']}", timeout=TIMEOUT).json()
        assert meta["path"] == "new/fresh.jpg"
        # The same process served before and after: no restart.
        assert server.process.poll() is None and server.process.pid == pid
        assert "Traceback" not in server.log()
    finally:
        server.stop()


def test_a_server_whose_model_fails_to_load_is_reported_at_once(
    live_library: dict[str, Any], tmp_path: Path
) -> None:
    env = {**live_library["env"], "CLIP_MODEL": str(tmp_path / "no-such-model"), "DATA_DIR": str(tmp_path)}
    started = time.monotonic()
    # Without its model nothing can be served: gunicorn stops, non-zero, saying why (issue 13, item 2).
    with pytest.raises(RuntimeError, match="gunicorn exited with 3") as failed:
        start_gunicorn(env, tmp_path / "gunicorn.log", timeout=120)  # type: ignore[arg-type]
    assert "no-such-model' (CLIP_MODEL): there is no such folder" in str(failed.value)
    assert "Traceback" not in str(failed.value)
    assert time.monotonic() - started < 60  # not the whole timeout
