"""An attacker's and a confused user's requests, over raw HTTP to the real gunicorn and through the app.

Each test pins a defect found by probing the running service (gunicorn's own HTML error pages: see
tests/test_error_shape.py): a 500 for a badly framed chunked body, a few-hundred-byte strip image that
CLIP's preprocessing would blow up to gigabytes, 16-bit and transparent images converted at full size,
unbounded JSON bodies, uploads spooled to temporary files, repeated parameters taken silently, redirects
built from the Host header, server paths in public messages, admin bodies parsed before the token check,
and an ingest run stopped by one file name that is not UTF-8.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.api_helpers")

import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import stat  # noqa: E402
import struct  # noqa: E402
import threading  # noqa: E402
import tracemalloc  # noqa: E402
import zlib  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import requests  # noqa: E402
import werkzeug.formparser  # noqa: E402
from flask import Flask  # noqa: E402
from PIL import Image  # noqa: E402
from requests.structures import CaseInsensitiveDict  # noqa: E402

from api import create_app  # noqa: E402
from core.images import MAX_ASPECT, decode_image  # noqa: E402
from core.model import ClipModel  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store import open_store  # noqa: E402
from devtools.live_server import REPO, LiveServer  # noqa: E402
from devtools.tiny_clip import build_tiny_clip  # noqa: E402
from ingest.handoff import TOKEN_FILE, TOKEN_HEADER  # noqa: E402
from ingest.pipeline import run_ingest  # noqa: E402
from ingest.scan import scan  # noqa: E402
from tests.api_helpers import ATTRIBUTED, ApiLibrary, FlakyStore, assert_error, upload  # noqa: E402
from tests.image_factory import jpeg_bytes, photo, write  # noqa: E402

pytest_plugins = ["tests.api_helpers"]

TIMEOUT = 30
MB = 1024 * 1024


# -- helpers ---------------------------------------------------------------------------------------------
def _read_response(sock: socket.socket) -> SimpleNamespace:
    """One HTTP/1.1 response from the socket: status, headers (lower-case names) and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return SimpleNamespace(status=int(lines[0].split()[1]), headers=headers, body=body[:length])


def _raw(server: LiveServer, data: bytes) -> SimpleNamespace:
    """Send bytes exactly as written and read the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        return _read_response(sock)


def _assert_raw_error(response: SimpleNamespace, status: int, code: str | None = None) -> dict[str, Any]:
    """The API's error shape (`assert_error`) on a response read off a raw socket, sent with nosniff."""
    as_http = SimpleNamespace(
        status_code=response.status, headers=CaseInsensitiveDict(response.headers), content=response.body
    )
    error = assert_error(as_http, status, code)
    assert response.headers.get("x-content-type-options") == "nosniff", response.headers
    return error


def _strip_png(width: int, height: int) -> bytes:
    """A tiny PNG of width x height black pixels (a strip compresses to a few hundred bytes)."""
    out = io.BytesIO()
    Image.new("L", (width, height)).save(out, "PNG")
    return out.getvalue()


# -- bodies framed wrong, over raw HTTP ---------------------------------------------------------------------
def _chunked_head(path: bytes, content_type: bytes) -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: " + content_type + b"\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        (b"/api/search", b"application/json", b"ZZ\r\nabc\r\n0\r\n\r\n"),  # not a chunk size
        (b"/api/classify", b"multipart/form-data; boundary=B", b"ZZ\r\n"),
        (b"/api/classify", b"multipart/form-data; boundary=B", b"4\r\n--B\r\nxx\r\n"),  # bad terminator
    ],
)
def test_badly_framed_chunked_body_is_400_not_500(
    live_server: LiveServer, path: bytes, content_type: bytes, body: bytes
) -> None:
    response = _raw(live_server, _chunked_head(path, content_type) + body)
    _assert_raw_error(response, 400, "bad_request")
    assert "unhandled error" not in live_server.log()


@pytest.mark.slow
def test_chunked_body_cut_short_is_400(live_server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=TIMEOUT) as sock:
        sock.sendall(_chunked_head(b"/api/classify", b"multipart/form-data; boundary=B") + b"40\r\n--B\r\n")
        sock.shutdown(socket.SHUT_WR)  # the client goes away mid-chunk
        _assert_raw_error(_read_response(sock), 400)


@pytest.mark.slow
def test_chunked_upload_over_the_limit_without_content_length_is_413(live_server: LiveServer) -> None:
    head = b'--B\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
    chunk = b"\xff" * 65536
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=TIMEOUT) as sock:
        # Keep-alive: the server drains what it did not read, so the answer is not lost to a reset.
        sock.sendall(
            b"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(head), head)
        )
        try:
            for _ in range(21 * MB // len(chunk)):  # the live server takes 20 MB
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may stop reading once it has answered
        _assert_raw_error(_read_response(sock), 413, "payload_too_large")


@pytest.mark.slow
def test_json_body_is_bounded_far_below_the_upload_limit(live_server: LiveServer) -> None:
    # 2 MB of tiny objects would be hundreds of MB of Python objects once parsed.
    bomb = b'{"q": "x", "z": [' + b"{}," * (700 * 1024) + b"{}]}"
    response = requests.post(
        f"{live_server.url}/api/search",
        data=bomb,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    assert_error(response, 413, "payload_too_large")
    ok = requests.post(f"{live_server.url}/api/search", json={"q": "é" * 20_000}, timeout=TIMEOUT)
    assert ok.status_code == 200, ok.text[:300]


# -- routes, methods, headers over HTTP ---------------------------------------------------------------------
def _routes(server: LiveServer) -> list[str]:
    point_id = requests.get(f"{server.url}/api/search", params={"q": "x", "k": 1}, timeout=TIMEOUT).json()
    point_id = point_id["results"][0]["id"]
    return [
        "/",
        "/main.js",
        "/api/health",
        "/api/ready",
        "/api/stats",
        "/api/classes",
        "/api/search",
        "/api/search/image",
        "/api/classify",
        f"/api/images/{point_id}",
        f"/api/images/{point_id}/similar",
        f"/images/{point_id}",
        f"/images/{point_id}/thumb",
        "/api/openapi.json",
        "/api/admin/ingest",
        "/no-such-page",
    ]


@pytest.mark.slow
def test_options_and_head_on_every_route_are_never_a_server_error(live_server: LiveServer) -> None:
    for path in _routes(live_server):
        for method in ("OPTIONS", "HEAD"):
            response = requests.request(method, f"{live_server.url}{path}", timeout=TIMEOUT)
            assert response.status_code < 500, (method, path, response.status_code)
            assert response.headers.get("X-Content-Type-Options") == "nosniff", (method, path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", ["/api//search?q=x", "//api//health", "/images//abc", "/api/images//abc/similar"]
)
def test_double_slashes_are_a_json_404_not_a_redirect_built_from_host(
    live_server: LiveServer, path: str
) -> None:
    response = _raw(live_server, f"GET {path} HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode())
    assert "location" not in response.headers, response.headers
    _assert_raw_error(response, 421, "unknown_host")  # a foreign Host is refused first (DNS rebinding)
    response = _raw(live_server, f"GET {path} HTTP/1.1\r\nHost: localhost:1\r\n\r\n".encode())
    assert "location" not in response.headers, response.headers
    _assert_raw_error(response, 404, "not_found")


@pytest.mark.slow
def test_repeated_parameters_are_refused_over_http(live_server: LiveServer) -> None:
    for query in (
        "q=x&q=y",
        "q=x&k=5&k=50",
        "q=x&class=pyramids&class=moscow_kremlin",
        "q=x&offset=0&offset=1",
    ):
        error = assert_error(requests.get(f"{live_server.url}/api/search?{query}", timeout=TIMEOUT), 400)
        assert "more than once" in error["message"], error
    jpeg = jpeg_bytes(photo(7))
    files = [("image", ("a.jpg", jpeg, "image/jpeg")), ("image", ("b.jpg", jpeg, "image/jpeg"))]
    for path in ("/api/classify", "/api/search/image"):
        response = requests.post(f"{live_server.url}{path}", files=files, timeout=TIMEOUT)
        assert "more than once" in assert_error(response, 400, "invalid_parameter")["message"]


@pytest.mark.slow
def test_strip_images_within_the_pixel_limit_answer_quickly(live_server: LiveServer) -> None:
    for width, height in ((100_000, 1), (1, 100_000), (40_000, 3)):
        data = _strip_png(width, height)
        for path in ("/api/classify", "/api/search/image"):
            response = requests.post(
                f"{live_server.url}{path}", files={"image": ("strip.png", data)}, timeout=TIMEOUT
            )
            assert response.status_code == 200, response.text[:300]
            assert response.elapsed.total_seconds() < 5, (width, height, response.elapsed)


@pytest.mark.slow
def test_no_error_message_names_a_server_path(live_server: LiveServer) -> None:
    url, root = live_server.url, str(live_server.extra["root"])
    responses = [
        requests.get(f"{url}/api/search", params={"q": "x", "k": "1e9"}, timeout=TIMEOUT),
        requests.get(f"{url}/images/00000000-0000-0000-0000-000000000000", timeout=TIMEOUT),
        requests.post(
            f"{url}/api/classify", files={"image": ("x", b"GIF89a" + b"\x00" * 40)}, timeout=TIMEOUT
        ),
        requests.get(f"{url}/..%2f..%2fetc%2fpasswd", timeout=TIMEOUT),
        requests.post(f"{url}/api/admin/ingest", json={"paths": ["/etc"]}, timeout=TIMEOUT),
    ]
    for response in responses:
        assert response.status_code >= 400
        text = response.text
        assert root not in text and str(REPO) not in text and "Traceback" not in text, text[:300]


@pytest.mark.slow
def test_admin_token_file_is_owner_only(live_server: LiveServer) -> None:
    token_file = Path(str(live_server.extra["data"])) / TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


# -- through the app: readiness, paths, admin, uploads -------------------------------------------------------


def test_readiness_under_a_store_outage_names_no_server_path(
    make_app: Callable[..., Flask], api_library: ApiLibrary
) -> None:
    secret = "/srv/wonders-secret/data/qdrant/images"
    store = FlakyStore(api_library.store, f"the embedded store at {secret} is open in another process")
    client = make_app(store=store).test_client()
    assert client.get("/api/ready").status_code == 200
    store.down = True
    for path in ("/api/ready", "/api/stats", "/api/search?q=x", f"/api/images/{api_library.ids[ATTRIBUTED]}"):
        error = assert_error(client.get(path), 503, "store_unavailable")
        assert "wonders-secret" not in error["message"], (path, error)


def test_failed_model_load_names_no_server_path(make_settings: Any, tmp_path: Path) -> None:
    app = create_app(make_settings(clip_model=str(tmp_path / "no-such-model")), load=True)
    app.extensions["wonders"].wait_loaded(60)
    error = assert_error(app.test_client().get("/api/ready"), 503, "load_failed")
    assert str(tmp_path) not in error["message"] and "no-such-model" not in error["message"], error


def test_model_mismatch_says_what_to_do_without_server_paths(api_library: ApiLibrary, tmp_path: Path) -> None:
    other_model = build_tiny_clip(tmp_path / "other-clip", dim=24)
    other = ClipModel(str(other_model), device="cpu", precision="fp32")
    client = create_app(
        api_library.settings_with(clip_model=str(other_model)), other, api_library.store
    ).test_client()
    for response in (client.get("/api/ready"), client.get("/api/search?q=x")):
        error = assert_error(response, 503, "model_mismatch")
        assert "--recreate" in error["message"] and "other-clip" in error["message"], error
        assert str(tmp_path) not in error["message"] and str(api_library.root) not in error["message"], error


class OutsidePathStore:
    """The library's store, where every image looks ingested from a folder outside the library."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def retrieve(self, *args: Any, **kwargs: Any) -> Any:
        points = self._inner.retrieve(*args, **kwargs)
        return [
            replace(p, payload={**p.payload, "path": "/home/someone/private/holiday.jpg"}) for p in points
        ]


def test_image_metadata_never_shows_an_absolute_server_path(
    make_app: Callable[..., Flask], api_library: ApiLibrary
) -> None:
    client = make_app(store=OutsidePathStore(api_library.store)).test_client()
    meta = client.get(f"/api/images/{api_library.ids[ATTRIBUTED]}")
    assert meta.status_code == 200
    assert meta.get_json()["path"] == "holiday.jpg"
    assert "/home/someone" not in meta.get_data(as_text=True)
    inside = make_app().test_client().get(f"/api/images/{api_library.ids[ATTRIBUTED]}").get_json()
    assert inside["path"] == ATTRIBUTED  # library-relative paths are shown as they are


def test_admin_is_authorized_before_its_body_is_read(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    app.config["WONDERS_ADMIN_TOKEN"] = "the-token"
    client = app.test_client()
    for body in ({"bogus": 1}, {"paths": "not-a-list"}, [1, 2]):
        response = client.post("/api/admin/ingest", json=body)
        assert_error(response, 403, "forbidden")
    response = client.post("/api/admin/ingest", data=b"{not json", content_type="application/json")
    assert_error(response, 403, "forbidden")


def test_forwarded_headers_never_make_a_remote_request_local(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    app.config["WONDERS_ADMIN_TOKEN"] = "the-token"
    client = app.test_client()
    spoofed = {
        TOKEN_HEADER: "the-token",
        "X-Forwarded-For": "127.0.0.1",
        "X-Real-IP": "127.0.0.1",
        "Forwarded": "for=127.0.0.1",
    }
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert_error(client.get("/api/admin/ingest", headers=spoofed, environ_base=remote), 403, "forbidden")
    local = client.get(
        "/api/admin/ingest", headers={TOKEN_HEADER: "the-token"}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    )
    assert local.status_code == 200 and local.get_json()["state"] == "idle"


def test_uploads_are_never_spooled_to_a_temporary_file(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_disk(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an upload was about to be written to a temporary file")

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", no_disk)
    client = make_app().test_client()
    big = jpeg_bytes(photo(31, (400, 300)))
    big += b"\x00" * (3 * MB - len(big))  # well over werkzeug's 500 KB spooling threshold
    for path in ("/api/classify", "/api/search/image"):
        response = client.post(path, data=upload(big))
        assert response.status_code == 200, response.get_data()[:300]


def test_repeated_query_parameters_are_400_in_the_app(client: Any, api_library: ApiLibrary) -> None:
    point_id = api_library.ids[ATTRIBUTED]
    for path in (f"/api/images/{point_id}/similar?k=2&k=3", "/api/search/image?k=2&k=3"):
        method = client.get if "similar" in path else client.post
        kwargs = {} if "similar" in path else {"data": upload(jpeg_bytes(photo(8)))}
        error = assert_error(method(path, **kwargs), 400, "invalid_parameter")
        assert error["details"]["query"]["k"] == ["Given more than once."]


# -- decoding: strips, 16-bit and transparent images ---------------------------------------------------------
@pytest.mark.parametrize("size", [(100_000, 1), (1, 100_000), (50_000, 7), (3, 20_000)])
def test_strips_are_cut_to_a_bounded_aspect_ratio(size: tuple[int, int]) -> None:
    decoded = decode_image(_strip_png(*size), 50_000_000, min_side=448)
    width, height = decoded.image.size
    assert max(width, height) <= MAX_ASPECT * min(width, height), decoded.image.size
    assert (decoded.width, decoded.height) == size  # the payload keeps the real size


def test_ordinary_panoramas_are_not_cut() -> None:
    decoded = decode_image(jpeg_bytes(photo(4, (4000, 500))), 50_000_000, min_side=448)
    assert decoded.image.size == (3584, 448)


def test_a_big_16_bit_image_costs_no_full_size_float_copy() -> None:
    out = io.BytesIO()
    Image.fromarray(np.full((4000, 4000), 40000, np.uint16)).save(out, "PNG")  # 30 KB, 16 megapixels
    tracemalloc.start()
    try:
        decoded = decode_image(out.getvalue(), 50_000_000, min_side=448)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The full-size float64 path took 366 MiB here; reduced first it is one 16-bit copy.
    assert peak < 200 * MB, f"{peak / MB:.0f} MiB"
    assert decoded.image.size == (448, 448)
    assert abs(int(np.asarray(decoded.image)[200, 200, 0]) - round(40000 / 65535 * 255)) <= 1


def test_a_big_transparent_image_is_still_composited_on_white() -> None:
    image = Image.new("RGBA", (4000, 3000), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 2001, 3000))  # the edge falls inside a reduction block
    out = io.BytesIO()
    image.save(out, "PNG")
    decoded = np.asarray(decode_image(out.getvalue(), 50_000_000, min_side=448).image)
    assert decoded[:, :, 0].min() >= 250  # red or white everywhere: no dark fringe from transparent black
    assert tuple(decoded[10, 10]) == (255, 0, 0) and tuple(decoded[10, -10]) == (255, 255, 255)


# -- ingest over a hostile library ---------------------------------------------------------------------------
def _non_utf8_name(folder: Path) -> Path:
    path = folder / os.fsdecode(b"caf\xe9-\xff.jpg")
    try:
        path.write_bytes(jpeg_bytes(photo(61)))
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    return path


def test_a_file_name_that_is_not_utf8_is_skipped_not_fatal(settings: Settings, encoder: ClipModel) -> None:
    library = settings.images_dir
    write(library / "good.jpg", jpeg_bytes(photo(60)))
    _non_utf8_name(library)
    result = scan([library])
    assert [p.name for p in result.files] == ["good.jpg"]
    (skipped, reason), *_ = result.skipped
    assert "UTF-8" in reason and str(skipped).encode("utf-8")  # printable, JSON-able
    store = open_store(settings)
    try:
        report = run_ingest(settings, encoder, store, show_progress=False)
    finally:
        store.close()
    assert report.new == 1 and any("UTF-8" in why for _, why in report.skipped), report.summary()
    json.dumps(report.as_dict(), ensure_ascii=False).encode("utf-8")
    report.summary().encode("utf-8")


def test_ingest_of_fifos_links_and_loops_finishes(settings: Settings, encoder: ClipModel) -> None:
    library, outside = settings.images_dir, settings.images_dir.parent / "outside"
    write(library / "good.jpg", jpeg_bytes(photo(70)))
    write(outside / "secret.txt", b"not a photo")
    os.mkfifo(library / "pipe.jpg")  # reading it would block forever
    (library / "pipe-link.jpg").symlink_to(library / "pipe.jpg")
    (library / "sub").mkdir()
    (library / "sub" / "loop").symlink_to(library)  # a directory loop
    (library / "dangling.jpg").symlink_to(library / "gone.jpg")
    (library / "secret.jpg").symlink_to(outside / "secret.txt")
    (library / "folder.jpg").mkdir()
    outcome: dict[str, Any] = {}

    def run() -> None:
        store = open_store(settings)
        try:
            outcome["report"] = run_ingest(settings, encoder, store, show_progress=False)
        except BaseException as err:
            outcome["error"] = err
        finally:
            store.close()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "ingest hung on the library"
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    assert report.new == 1, report.summary()
    assert any("secret.jpg" in path for path, _ in report.skipped), report.summary()


def test_declared_size_png_chunks_are_bounded() -> None:
    """Text chunks that inflate to 100 MB are refused by the decoder, not inflated."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + b"\x80" * 24 for _ in range(8))
    bomb = zlib.compress(b"\x00" * (100 * MB), 9)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
        + chunk(b"zTXt", b"Comment\x00\x00" + bomb)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):  # UnsupportedImage
            decode_image(data, 50_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * MB
