"""`make dataset` against a local replay server: nothing is downloaded from the internet here.

The server (http.server on 127.0.0.1) answers like the MediaWiki API (generator=search + imageinfo with
extmetadata), the Pixabay API and an image host, with generated images, throttling (429 + Retry-After),
a 500, a non-image body and truncated bodies.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from dataset import queries
from dataset.candidate import make_file_name, slugify
from dataset.cli import FULL_PER_CLASS, build_parser, main
from dataset.http import HostUnreachableError, HttpError, PoliteSession, parse_retry_after, redact
from dataset.licences import classify_licence
from dataset.manifest import Manifest
from dataset.verify import ImageRejectedError, verify_image
from dataset.wikimedia import strip_html

ROOT = Path(__file__).resolve().parents[1]
CLASSES_FILE = ROOT / "core" / "classes.yaml"
API_PATH = "/w/api.php"
PIXABAY_PATH = "/pixabay/api/"
FAST = ["--delay", "0", "--backoff", "0.01", "--max-wait", "0.05", "--retries", "3"]


# --------------------------------------------------------------------------- replay server


@dataclass
class Reply:
    """One canned answer; `declared_length` > len(body) makes a truncated response."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    declared_length: int | None = None


Handler = Callable[[dict[str, str]], Reply]


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class Replay:
    """Routes: path -> a list of replies (served in turn, the last one repeats) or a function of the query."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply] | Handler] = {}
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        replay = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with replay.lock:
                    replay.requests.append(Seen(parts.path, query, dict(self.headers.items())))
                    route = replay.routes.get(parts.path)
                    if route is None:
                        reply = Reply(404, b"not found", "text/plain")
                    elif callable(route):
                        reply = route(query)
                    else:
                        reply = route.pop(0) if len(route) > 1 else route[0]
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                declared = reply.declared_length if reply.declared_length is not None else len(reply.body)
                self.send_header("Content-Length", str(declared))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)
                self.close_connection = True

            def log_message(self, *args: Any) -> None:  # quiet: no access log
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def hits(self, path: str) -> int:
        return sum(1 for seen in self.requests if seen.path == path)

    def image_requests(self) -> list[str]:
        return [seen.path for seen in self.requests if seen.path.startswith("/img/")]


@pytest.fixture
def replay() -> Iterator[Replay]:
    server = Replay()
    yield server
    server.close()


def jpeg(width: int = 320, height: int = 240) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def png(width: int = 300, height: int = 300) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def image_reply(body: bytes, kind: str = "jpeg", **extra: Any) -> Reply:
    return Reply(200, body, f"image/{kind}", **extra)


def json_reply(data: object) -> Reply:
    return Reply(200, json.dumps(data).encode(), "application/json; charset=utf-8")


# --------------------------------------------------------------------------- MediaWiki answers


def meta(value: str) -> dict[str, str]:
    return {"value": value, "source": "commons-desc-page", "hidden": ""}


def wm_page(
    base: str,
    page_id: int,
    title: str,
    index: int,
    *,
    short_name: str,
    code: str = "",
    url: str = "",
    mime: str = "image/jpeg",
    thumb: tuple[int, int] = (320, 240),
    artist: str = "Someone",
) -> dict[str, Any]:
    """One `query.pages[]` entry as api.php (formatversion=2) answers iiprop=url|size|mime|extmetadata."""
    extension = "png" if mime == "image/png" else "jpg"
    path = f"/img/{page_id}.{extension}"
    metadata = {
        "LicenseShortName": meta(short_name),
        "Artist": meta(artist),
        "ObjectName": meta(title.rsplit(".", 1)[0].replace("_", " ")),
    }
    if code:
        metadata["License"] = meta(code)
    if url:
        metadata["LicenseUrl"] = meta(url)
    name = title.replace(" ", "_")
    return {
        "pageid": page_id,
        "ns": 6,
        "title": f"File:{title}",
        "index": index,
        "imagerepository": "local",
        "imageinfo": [
            {
                "size": 2_456_789,
                "width": thumb[0] * 10,
                "height": thumb[1] * 10,
                "thumburl": base + path,
                "thumbwidth": thumb[0],
                "thumbheight": thumb[1],
                "url": f"{base}/orig/{page_id}",
                "descriptionurl": f"https://commons.wikimedia.org/wiki/File:{name}",
                "descriptionshorturl": f"https://commons.wikimedia.org/w/index.php?curid={page_id}",
                "mime": mime,
                "extmetadata": metadata,
            }
        ],
    }


ALICE = (
    '<a href="//commons.wikimedia.org/wiki/User:Alice" title="User:Alice">Alice &amp; Bob</a>\n'
    '<span class="fn">(photographer)</span>'
)


def install_commons(replay: Replay) -> dict[int, str]:
    """Two result pages for 'Pyramids of Giza'; returns page id -> what the test expects of that file."""
    b = replay.base
    page1 = [
        wm_page(
            b,
            101,
            "Giza pyramids at dawn.jpg",
            1,
            short_name="CC BY-SA 4.0",
            code="cc-by-sa-4.0",
            url="https://creativecommons.org/licenses/by-sa/4.0",
            artist=ALICE,
        ),
        wm_page(b, 102, "Khafre NC.jpg", 2, short_name="CC BY-NC-SA 2.0", code="cc-by-nc-sa-2.0"),
        wm_page(
            b,
            103,
            "Pyramid plan.png",
            3,
            short_name="Public domain",
            code="pd",
            mime="image/png",
            thumb=(300, 300),
        ),
        wm_page(b, 104, "Pyramid diagram.svg", 4, short_name="CC0", code="cc0", mime="image/svg+xml"),
        wm_page(b, 105, "Broken.jpg", 5, short_name="CC0", code="cc0"),
    ]
    page2 = [
        wm_page(b, 106, "Cut short.jpg", 6, short_name="CC BY 2.0", code="cc-by-2.0"),
        wm_page(b, 107, "Half a jpeg.jpg", 7, short_name="CC BY-SA 3.0", code="cc-by-sa-3.0"),
        wm_page(b, 108, "Poster.jpg", 8, short_name="Fair use", code=""),
        wm_page(b, 109, "Throttled.jpg", 9, short_name="CC BY 4.0", code="cc-by-4.0"),
        wm_page(b, 110, "Flaky server.jpg", 10, short_name="CC BY-SA 4.0", code="cc-by-sa-4.0"),
        wm_page(b, 111, "Sphinx.jpg", 11, short_name="CC BY-SA 4.0", code="cc-by-sa-4.0"),
    ]

    def api(query: dict[str, str]) -> Reply:
        if "Pyramids of Giza" not in query.get("gsrsearch", ""):
            return json_reply({"batchcomplete": True})
        if query.get("gsroffset") == "5":
            return json_reply({"batchcomplete": True, "query": {"pages": list(reversed(page2))}})
        return json_reply(
            {
                "batchcomplete": True,
                "continue": {"gsroffset": 5, "continue": "gsroffset||"},
                "query": {"pages": page1},
            }
        )

    good = jpeg()
    half = good[: len(good) // 2]
    replay.routes.update(
        {
            API_PATH: api,
            "/img/101.jpg": [image_reply(good)],
            "/img/103.png": [image_reply(png(), "png")],
            "/img/105.jpg": [image_reply(b"<html>Error: this is not an image</html>" * 40, "jpeg")],
            "/img/106.jpg": [image_reply(good, declared_length=len(good) + 5000)],
            "/img/107.jpg": [image_reply(half)],
            "/img/109.jpg": [
                Reply(429, b"slow down", "text/plain", {"Retry-After": "1"}),
                image_reply(jpeg()),
            ],
            "/img/110.jpg": [Reply(500, b"oops", "text/plain"), image_reply(jpeg())],
            "/img/111.jpg": [image_reply(jpeg())],
        }
    )
    return {101: "kept", 102: "licence", 103: "kept", 104: "mime", 105: "broken", 106: "truncated",
            107: "truncated", 108: "licence", 109: "kept", 110: "kept", 111: "spare"}  # fmt: skip


@pytest.fixture
def one_term(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(queries.QUERIES, "pyramids", ("Pyramids of Giza",))
    monkeypatch.delenv("PIXABAY_API_KEY", raising=False)


def run_cli(replay: Replay, images: Path, *extra: str) -> int:
    return main(
        [
            "--images-dir", str(images),
            "--classes-file", str(CLASSES_FILE),
            "--wikimedia-api-url", replay.base + API_PATH,
            "--pixabay-api-url", replay.base + PIXABAY_PATH,
            "--classes", "pyramids",
            *FAST,
            *extra,
        ]
    )  # fmt: skip


def name_of(page_id: int, title: str, extension: str = "jpg") -> str:
    return make_file_name("wm", page_id, title, extension)


# --------------------------------------------------------------------------- end to end


@pytest.mark.usefixtures("one_term")
def test_downloads_free_images_with_manifest_and_rejects_the_rest(
    replay: Replay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_commons(replay)
    assert run_cli(replay, tmp_path, "--per-class", "4") == 0
    folder = tmp_path / "pyramids"
    kept = {
        name_of(101, "Giza pyramids at dawn"),
        name_of(103, "Pyramid plan", "png"),
        name_of(109, "Throttled"),
        name_of(110, "Flaky server"),
    }
    assert {p.name for p in folder.iterdir()} == kept | {"manifest.json"}  # no .part, no tmp, no rejects
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest) == kept
    assert manifest[name_of(101, "Giza pyramids at dawn")] == {
        "title": "Giza pyramids at dawn",
        "author": "Alice & Bob (photographer)",
        "license": "CC BY-SA 4.0",
        "license_url": "https://creativecommons.org/licenses/by-sa/4.0",
        "source_url": "https://commons.wikimedia.org/wiki/File:Giza_pyramids_at_dawn.jpg",
        "source": "wikimedia",
    }
    assert manifest[name_of(103, "Pyramid plan", "png")]["license"] == "Public domain"
    assert manifest[name_of(103, "Pyramid plan", "png")]["license_url"] is None
    for name in kept:
        with Image.open(folder / name) as image:
            image.load()

    images = replay.image_requests()
    assert "/img/102.jpg" not in images and "/img/104.jpg" not in images  # NC licence, SVG: never fetched
    assert "/img/108.jpg" not in images  # fair use
    assert images.count("/img/109.jpg") == 2 and images.count("/img/110.jpg") == 2  # 429 / 500, then retried
    assert "/img/111.jpg" not in images  # target reached: stops early

    api_calls = [seen for seen in replay.requests if seen.path == API_PATH]
    assert len(api_calls) == 2 and api_calls[1].query["gsroffset"] == "5"
    first = api_calls[0].query
    assert first["generator"] == "search" and first["gsrnamespace"] == "6" and first["prop"] == "imageinfo"
    assert set(first["iiprop"].split("|")) >= {"url", "size", "mime", "extmetadata"}
    assert first["iiurlwidth"] == "1280"
    assert all(seen.headers["User-Agent"].startswith("Wonders/0.1 (") for seen in replay.requests)

    out = capsys.readouterr()
    assert "not a decodable image" in out.err
    assert "truncated" in out.err
    table = next(line for line in out.out.splitlines() if line.startswith("pyramids "))
    assert table.split()[1:] == ["4", "0", "6", "0", "4/4"]


@pytest.mark.usefixtures("one_term")
def test_rerun_skips_what_is_there_and_fetches_only_new_files(replay: Replay, tmp_path: Path) -> None:
    install_commons(replay)
    assert run_cli(replay, tmp_path, "--per-class", "4") == 0
    replay.requests.clear()

    assert run_cli(replay, tmp_path, "--per-class", "4") == 0
    assert replay.requests == []  # complete: not a single request, images or API

    assert run_cli(replay, tmp_path, "--per-class", "5") == 0
    images = replay.image_requests()
    assert images.count("/img/111.jpg") == 1
    for done in ("/img/101.jpg", "/img/103.png", "/img/109.jpg", "/img/110.jpg"):
        assert done not in images
    manifest = Manifest.load(tmp_path / "pyramids")
    assert len(manifest.present()) == 5


@pytest.mark.usefixtures("one_term")
def test_complete_library_needs_no_network(replay: Replay, tmp_path: Path) -> None:
    install_commons(replay)
    assert run_cli(replay, tmp_path, "--per-class", "2") == 0
    closed = closed_port_url()
    assert main(["--images-dir", str(tmp_path), "--classes", "pyramids", "--per-class", "2",
                 "--wikimedia-api-url", closed, *FAST]) == 0  # fmt: skip


@pytest.mark.usefixtures("one_term")
def test_file_left_by_an_interrupted_run_is_adopted_not_refetched(replay: Replay, tmp_path: Path) -> None:
    install_commons(replay)
    folder = tmp_path / "pyramids"
    folder.mkdir()
    # renamed into place, then interrupted before the manifest was written; plus a stale partial download
    (folder / name_of(101, "Giza pyramids at dawn")).write_bytes(jpeg())
    (folder / f".{name_of(103, 'Pyramid plan', 'png')}.part").write_bytes(b"half")
    assert run_cli(replay, tmp_path, "--per-class", "2") == 0
    assert "/img/101.jpg" not in replay.image_requests()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest[name_of(101, "Giza pyramids at dawn")]["license"] == "CC BY-SA 4.0"
    assert not list(folder.glob(".*"))


@pytest.mark.slow
def test_python_m_dataset_reads_the_service_urls_from_the_environment(replay: Replay, tmp_path: Path) -> None:
    install_commons(replay)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "IMAGES_DIR": str(tmp_path / "lib"),
        "PIXABAY_API_KEY": "",
        "WIKIMEDIA_API_URL": replay.base + API_PATH,
        "PIXABAY_API_URL": replay.base + PIXABAY_PATH,
    }
    args = ["--classes", "pyramids", "--per-class", "1", "--classes-file", str(CLASSES_FILE), *FAST]
    command = [sys.executable, "-m", "dataset", *args]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "lib" / "pyramids" / name_of(101, "Giza pyramids at dawn")).is_file()
    assert replay.hits(PIXABAY_PATH) == 0


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/w/api.php"


@pytest.mark.usefixtures("one_term")
def test_unreachable_hub_says_so_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = closed_port_url()
    code = main(["--images-dir", str(tmp_path), "--classes", "pyramids,moscow_kremlin",
                 "--wikimedia-api-url", url, *FAST])  # fmt: skip
    assert code == 1
    out = capsys.readouterr()
    host = urlsplit(url).netloc
    assert f"cannot reach {host}: connection refused; check your internet connection" in out.out + out.err
    assert "Nothing could be downloaded" in out.err
    # Offline, nothing is left behind and nothing is claimed (issue 13, item 14).
    assert not any(tmp_path.iterdir()), sorted(p.name for p in tmp_path.iterdir())
    assert "Attribution of every photo" not in out.out
    assert "no attribution file was written" in out.out


@pytest.mark.usefixtures("one_term")
def test_pixabay_is_not_asked_without_a_key(replay: Replay, tmp_path: Path) -> None:
    install_commons(replay)
    install_pixabay(replay)
    assert run_cli(replay, tmp_path, "--per-class", "4") == 0
    assert replay.hits(PIXABAY_PATH) == 0
    assert not list((tmp_path / "pyramids").glob("px-*"))


def install_pixabay(replay: Replay) -> None:
    hits = [
        {
            "id": 195893,
            "pageURL": "https://pixabay.com/en/pyramids-egypt-giza-195893/",
            "type": "photo",
            "tags": "pyramids, egypt, giza",
            "previewURL": f"{replay.base}/img/px-preview.jpg",
            "webformatURL": f"{replay.base}/img/px-195893_640.jpg",
            "webformatWidth": 640,
            "webformatHeight": 480,
            "largeImageURL": f"{replay.base}/img/px-195893_1280.jpg",
            "imageWidth": 4000,
            "imageHeight": 3000,
            "views": 7671,
            "downloads": 6439,
            "likes": 5,
            "user_id": 48777,
            "user": "Josch13",
            "userImageURL": "",
        },
        {
            "id": 2000,
            "pageURL": "https://pixabay.com/en/sphinx-2000/",
            "type": "photo",
            "tags": "sphinx, Ägypten",
            "webformatURL": f"{replay.base}/img/px-2000_640.png",
            "largeImageURL": f"{replay.base}/img/px-2000_1280.png",
            "imageWidth": 3000,
            "imageHeight": 3000,
            "user": "Nefer",
        },
    ]
    replay.routes.update(
        {
            PIXABAY_PATH: [json_reply({"total": 2, "totalHits": 2, "hits": hits})],
            "/img/px-195893_1280.jpg": [image_reply(jpeg(320, 240))],
            "/img/px-2000_1280.png": [image_reply(png(300, 300), "png")],
        }
    )


@pytest.mark.usefixtures("one_term")
def test_pixabay_is_used_with_a_key(
    replay: Replay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install_commons(replay)
    install_pixabay(replay)
    monkeypatch.setenv("PIXABAY_API_KEY", "secret-key-123")
    assert run_cli(replay, tmp_path, "--per-class", "4") == 0
    calls = [seen for seen in replay.requests if seen.path == PIXABAY_PATH]
    assert len(calls) == 1
    assert calls[0].query["key"] == "secret-key-123" and calls[0].query["q"] == "Pyramids of Giza"
    assert calls[0].query["image_type"] == "photo"
    manifest = json.loads((tmp_path / "pyramids" / "manifest.json").read_text(encoding="utf-8"))
    pixabay_entries = {name: entry for name, entry in manifest.items() if entry["source"] == "pixabay"}
    assert pixabay_entries == {
        "px-195893-pyramids-egypt-giza.jpg": {
            "title": "pyramids, egypt, giza",
            "author": "Josch13",
            "license": "Pixabay Content License",
            "license_url": "https://pixabay.com/service/license-summary/",
            "source_url": "https://pixabay.com/en/pyramids-egypt-giza-195893/",
            "source": "pixabay",
        },
        "px-2000-sphinx-agypten.png": {
            "title": "sphinx, Ägypten",
            "author": "Nefer",
            "license": "Pixabay Content License",
            "license_url": "https://pixabay.com/service/license-summary/",
            "source_url": "https://pixabay.com/en/sphinx-2000/",
            "source": "pixabay",
        },
    }
    assert len(manifest) == 4  # sources alternate: two from each
    out = capsys.readouterr()
    assert "secret-key-123" not in out.out + out.err


@pytest.mark.usefixtures("one_term")
def test_refused_pixabay_key_is_reported_and_commons_still_used(
    replay: Replay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install_commons(replay)
    replay.routes[PIXABAY_PATH] = [Reply(400, b"[ERROR 400] Invalid or missing API key", "text/plain")]
    monkeypatch.setenv("PIXABAY_API_KEY", "wrong-key")
    assert run_cli(replay, tmp_path, "--per-class", "3") == 0
    out = capsys.readouterr()
    assert "pixabay not used" in out.out and "Invalid or missing API key" in out.out
    assert "wrong-key" not in out.out + out.err
    assert len(Manifest.load(tmp_path / "pyramids").present()) == 3


# --------------------------------------------------------------------------- the polite session


def test_session_honours_retry_after_then_succeeds(replay: Replay) -> None:
    replay.routes["/x"] = [Reply(429, b"", headers={"Retry-After": "7"}), Reply(200, b"ok")]
    sleeps: list[float] = []
    session = PoliteSession(delay=0, backoff=0.5, sleep=sleeps.append)
    assert session.get(replay.base + "/x").content == b"ok"
    assert sleeps == [7.0]


def test_session_backs_off_exponentially_on_5xx_then_gives_up(replay: Replay) -> None:
    replay.routes["/x"] = [Reply(503, b""), Reply(502, b""), Reply(200, b"ok")]
    sleeps: list[float] = []
    assert PoliteSession(delay=0, backoff=0.5, sleep=sleeps.append).get(replay.base + "/x").content == b"ok"
    assert sleeps == [0.5, 1.0]

    replay.routes["/y"] = [Reply(500, b"down")]
    sleeps.clear()
    with pytest.raises(HttpError) as caught:
        PoliteSession(delay=0, backoff=1, retries=3, max_wait=3, sleep=sleeps.append).get(replay.base + "/y")
    assert caught.value.status == 500
    assert sleeps == [1, 2, 3]  # capped by max_wait


def test_session_spaces_requests_by_the_delay(replay: Replay) -> None:
    replay.routes["/x"] = [Reply(200, b"ok")]
    sleeps: list[float] = []
    session = PoliteSession(delay=10, sleep=sleeps.append)
    session.get(replay.base + "/x")
    session.get(replay.base + "/x")
    assert len(sleeps) == 1 and 9 < sleeps[0] <= 10


def test_session_reports_an_unreachable_host_quickly() -> None:
    sleeps: list[float] = []
    with pytest.raises(HostUnreachableError, match="check your internet connection"):
        PoliteSession(delay=0, sleep=sleeps.append).get(closed_port_url(), params={"key": "k"})
    assert len(sleeps) == 2  # two short retries, not the whole 429/5xx budget


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = datetime(2025, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30)


def test_redact_hides_api_keys() -> None:
    assert redact("GET /api/?key=abc123&q=x failed") == "GET /api/?key=***&q=x failed"


# --------------------------------------------------------------------------- pieces


@pytest.mark.parametrize(
    ("short_name", "code", "family"),
    [
        ("CC BY-SA 4.0", "cc-by-sa-4.0", "CC BY-SA"),
        ("CC BY 2.0", "cc-by-2.0", "CC BY"),
        ("CC BY-SA 3.0 de", "cc-by-sa-3.0-de", "CC BY-SA"),
        ("CC-BY-SA-3.0-migrated", None, "CC BY-SA"),
        ("CC0", "cc0", "CC0"),
        ("Public domain", "pd", "PD"),
        ("PD-self", None, "PD"),
        ("Public Domain Mark 1.0", None, "PD"),
        (None, "cc-by-4.0", "CC BY"),
    ],
)
def test_free_licences_are_kept(short_name: str | None, code: str | None, family: str) -> None:
    verdict = classify_licence(short_name, code)
    assert verdict.free and verdict.family == family


@pytest.mark.parametrize(
    ("short_name", "code"),
    [
        ("CC BY-NC-SA 2.0", "cc-by-nc-sa-2.0"),
        ("CC BY-ND 4.0", None),
        ("CC BY-NC 4.0", None),
        ("CC BY-SA 4.0", "cc-by-nc-sa-4.0"),  # contradicting fields: the restrictive one wins
        ("Fair use", None),
        ("Non-free", None),
        ("GFDL", "gfdl"),
        ("All rights reserved", None),
        ("", ""),
        (None, None),
    ],
)
def test_other_licences_are_refused(short_name: str | None, code: str | None) -> None:
    assert not classify_licence(short_name, code).free


def test_strip_html_gives_plain_author() -> None:
    assert strip_html(ALICE) == "Alice & Bob (photographer)"
    assert strip_html("<table><tr><td>x</td></tr></table>" + "y" * 400).endswith("…")
    assert strip_html(None) == ""


def test_file_names_are_stable_safe_and_short() -> None:
    name = make_file_name("wm", 42, "../../etc/passwd Ünïcode «quotes» " + "long " * 40, "JPG")
    assert name == make_file_name("wm", 42, "../../etc/passwd Ünïcode «quotes» " + "long " * 40, "jpg")
    assert name.startswith("wm-42-etc-passwd-unicode-quotes-") and name.endswith(".jpg")
    assert "/" not in name and len(name) <= 84
    assert make_file_name("px", 7, "日本", "png") == "px-7.png"
    assert slugify("Saint Basil's Cathedral") == "saint-basil-s-cathedral"


def test_verify_rejects_tiny_wrong_and_truncated_files(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg(320, 240))
    assert verify_image(good, expected_format="JPEG", expected_aspect=4 / 3) == (320, 240)
    cases = {
        "tiny": b"\xff\xd8\xff",
        "html": b"<html>" * 500,
        "half": good.read_bytes()[: good.stat().st_size // 2],
    }
    for name, body in cases.items():
        path = tmp_path / name
        path.write_bytes(body)
        with pytest.raises(ImageRejectedError):
            verify_image(path)
    with pytest.raises(ImageRejectedError, match="aspect"):
        verify_image(good, expected_aspect=1.0)
    with pytest.raises(ImageRejectedError, match="PNG"):
        verify_image(good, expected_format="PNG")
    small = tmp_path / "small.png"
    small.write_bytes(png(120, 90))
    with pytest.raises(ImageRejectedError, match="too small"):
        verify_image(small)


def test_manifest_is_written_atomically_and_a_corrupt_one_is_set_aside(tmp_path: Path) -> None:
    manifest = Manifest.load(tmp_path)
    manifest.add("a.jpg", {"title": "A"})
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"a.jpg": {"title": "A"}}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    (tmp_path / "manifest.json").write_text("{not json")
    assert Manifest.load(tmp_path).entries == {}
    assert len(list(tmp_path.glob("manifest.json.corrupt-*"))) == 1


def test_cli_sizes_and_class_selection(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert parser.parse_args([]).per_class == 12
    assert parser.parse_args(["--full"]).full and FULL_PER_CLASS == 180
    with pytest.raises(SystemExit):
        parser.parse_args(["--full", "--per-class", "3"])
    with pytest.raises(SystemExit) as caught:
        main(["--classes", "pyramids,atlantis", "--classes-file", str(CLASSES_FILE)])
    assert caught.value.code == 2
    assert "unknown class id(s): atlantis" in capsys.readouterr().err


def test_every_class_has_search_terms() -> None:
    from core.classes import load_classes

    for cls in load_classes(CLASSES_FILE):
        assert queries.terms_for(cls.id, cls.name) == queries.QUERIES[cls.id]
