"""Every way a client can get it wrong: one JSON error shape, a fitting 4xx (or 503), never a 500."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.api_helpers")

import io  # noqa: E402
import json  # noqa: E402
import urllib.parse  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

from api import create_app  # noqa: E402
from core.model import ClipModel  # noqa: E402
from devtools.tiny_clip import build_tiny_clip  # noqa: E402
from tests.api_helpers import (  # noqa: E402
    ATTRIBUTED,
    SECRET,
    ApiLibrary,
    FlakyStore,
    assert_error,
    declared_png,
    listing,
    upload,
)
from tests.image_factory import bomb_png, jpeg_bytes, photo, truncated_jpeg  # noqa: E402

pytest_plugins = ["tests.api_helpers"]

UNKNOWN_ID = str(uuid.UUID(int=12345))
MB = 1024 * 1024


@pytest.fixture(scope="module")
def good_jpeg() -> bytes:
    """A valid query photo."""
    return jpeg_bytes(photo(555, (400, 300)))


# -- 400: parameters -------------------------------------------------------------------------------------
BAD_PAGE_PARAMS = [
    {"k": "abc"},
    {"k": "0"},
    {"k": "-1"},
    {"k": "101"},
    {"k": "1.5"},
    {"k": ""},
    {"k": "1e2"},
    {"k": "9" * 5000},
    {"offset": "-1"},
    {"offset": "abc"},
    {"offset": "10001"},
    {"offset": "2.0"},
    {"min_score": "nan"},
    {"min_score": "NaN"},
    {"min_score": "inf"},
    {"min_score": "-Infinity"},
    {"min_score": "1.5"},
    {"min_score": "-2"},
    {"min_score": "high"},
    {"class": "x" * 65},
    {"bogus": "1"},
    {"K": "5"},
    {"q2": "x"},
]


@pytest.mark.parametrize("params", BAD_PAGE_PARAMS, ids=lambda p: urllib.parse.urlencode(p)[:40])
def test_bad_search_parameters_are_400(client: FlaskClient, params: dict[str, str]) -> None:
    error = assert_error(client.get("/api/search", query_string={"q": "pyramids", **params}), 400)
    assert error["code"] == "invalid_parameter"
    assert next(iter(params)) in error["message"]


@pytest.mark.parametrize("params", BAD_PAGE_PARAMS, ids=lambda p: urllib.parse.urlencode(p)[:40])
def test_bad_image_search_parameters_are_400(
    client: FlaskClient, params: dict[str, str], good_jpeg: bytes
) -> None:
    query = urllib.parse.urlencode(params)
    assert_error(client.post(f"/api/search/image?{query}", data=upload(good_jpeg)), 400, "invalid_parameter")


@pytest.mark.parametrize(
    "params",
    [p for p in BAD_PAGE_PARAMS if "min_score" not in p],
    ids=lambda p: urllib.parse.urlencode(p)[:40],
)
def test_bad_similar_parameters_are_400(
    client: FlaskClient, api_library: ApiLibrary, params: dict[str, str]
) -> None:
    point_id = api_library.ids[ATTRIBUTED]
    assert_error(client.get(f"/api/images/{point_id}/similar", query_string=params), 400, "invalid_parameter")


@pytest.mark.parametrize(
    "body",
    [
        {"q": "x", "k": 0},
        {"q": "x", "k": "many"},
        {"q": "x", "k": None},
        {"q": "x", "k": True},
        {"q": "x", "k": 1e400},
        {"q": "x", "offset": -5},
        {"q": "x", "min_score": 3},
        {"q": "x", "bogus": 1},
        {"q": 5},
        {"q": ["pyramids"]},
        {"q": None},
        {"q": "x", "class": 7},
        {"query": "pyramids"},
        {},
    ],
    ids=lambda b: json.dumps(b)[:40],
)
def test_bad_json_search_bodies_are_400(client: FlaskClient, body: dict[str, Any]) -> None:
    assert_error(client.post("/api/search", json=body), 400, "invalid_parameter")


@pytest.mark.parametrize("how", ["get", "post"])
def test_unknown_class_is_400(client: FlaskClient, api_library: ApiLibrary, how: str) -> None:
    if how == "get":
        response = client.get("/api/search", query_string={"q": "x", "class": "atlantis"})
    else:
        response = client.post("/api/search", json={"q": "x", "class": "atlantis"})
    error = assert_error(response, 400, "unknown_class")
    assert "atlantis" in error["message"] and "pyramids" in error["message"]
    similar = client.get(f"/api/images/{api_library.ids[ATTRIBUTED]}/similar?class=atlantis")
    assert_error(similar, 400, "unknown_class")


@pytest.mark.parametrize("q", ["", " ", "   \t\n ", "\u3000", "\u00a0\u2003"])
def test_empty_or_whitespace_query_is_400(client: FlaskClient, q: str) -> None:
    assert_error(client.get("/api/search", query_string={"q": q}), 400)
    assert_error(client.post("/api/search", json={"q": q}), 400)


def test_missing_query_is_400(client: FlaskClient) -> None:
    assert "q" in assert_error(client.get("/api/search"), 400, "invalid_parameter")["message"]
    assert "q" in assert_error(client.get("/api/search?k=5"), 400, "invalid_parameter")["message"]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"q=pyramids", "application/x-www-form-urlencoded"),
        (b"pyramids", "text/plain"),
        (b"{not json", "application/json"),
        (b'{"q": "x"} trailing', "application/json"),
        (b"", "application/json"),
        (b'["q", "x"]', "application/json"),
        (b'"pyramids"', "application/json"),
        (b"null", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"[" * 50_000 + b"]" * 50_000, "application/json"),
        (b'{"q": "x", "k": ' + b"9" * 5000 + b"}", "application/json"),
        (b'{"q": "x", "k": NaN}', "application/json"),
        (b"", None),
    ],
    ids=lambda v: repr(v)[:30] if v else "none",
)
def test_non_json_or_broken_post_body_is_400(
    client: FlaskClient, data: bytes, content_type: str | None
) -> None:
    assert_error(client.post("/api/search", data=data, content_type=content_type), 400)


# -- 400: uploads without a photo ------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/search/image", "/api/classify"])
def test_upload_without_image_field_is_400(client: FlaskClient, path: str, good_jpeg: bytes) -> None:
    assert_error(client.post(path, data={}), 400)
    assert_error(client.post(path, data={"photo": (io.BytesIO(good_jpeg), "a.jpg")}), 400)
    assert_error(client.post(path, data={"image": "just text, not a file"}), 400)
    assert_error(client.post(path, data=good_jpeg, content_type="image/jpeg"), 400)
    assert_error(client.post(path, json={"image": "aGVsbG8="}), 400)
    assert_error(
        client.post(path, data=b"--x\r\nbroken", content_type="multipart/form-data; boundary=x"), 400
    )
    assert_error(client.post(path, data=b"", content_type="multipart/form-data"), 400)


# -- 404 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "template", ["/api/images/{}", "/api/images/{}/similar", "/images/{}", "/images/{}/thumb"]
)
@pytest.mark.parametrize(
    "point_id",
    [
        UNKNOWN_ID,
        str(uuid.uuid4()),
        "xyz",
        "123",
        "0" * 32 + "0",
        UNKNOWN_ID + "x",
        UNKNOWN_ID + "%00",
        "%00",
        "%20",
        "null",
        "..",
        "a" * 5000,
    ],
    ids=lambda v: v[:20],
)
def test_unknown_or_malformed_ids_are_404(client: FlaskClient, template: str, point_id: str) -> None:
    assert_error(client.get(template.format(point_id)), 404)


@pytest.mark.parametrize(
    "path", ["/api/nope", "/api/search/text", "/api/images", "/api/images/", "/api", "/images", "/nope.html"]
)
def test_unknown_paths_are_404(client: FlaskClient, path: str) -> None:
    assert_error(client.get(path), 404, "not_found")


def test_indexed_photo_whose_file_is_gone_is_404(client: FlaskClient, api_library: ApiLibrary) -> None:
    point_id = api_library.ids["west/photo_3.jpg"]
    path = api_library.settings.images_dir / "west" / "photo_3.jpg"
    moved = path.with_suffix(".moved")
    path.rename(moved)
    try:
        assert_error(client.get(f"/images/{point_id}"), 404, "file_missing")
    finally:
        moved.rename(path)
    assert client.get(f"/images/{point_id}").status_code == 200


def _traversals(api_library: ApiLibrary) -> list[str]:
    secret = api_library.root / "secret.txt"
    absolute = urllib.parse.quote(str(secret), safe="")
    point_id = api_library.ids[ATTRIBUTED]
    return [
        "/images/..%2f..%2fetc%2fpasswd",
        "/images/%2e%2e/",
        "/images/%2e%2e/%2e%2e/etc/passwd",
        "/images/../../etc/passwd",
        "/images/..%2fsecret.txt",
        "/images/..%2f..%2fsecret.txt",
        "/images/%2e%2e%2fsecret.txt",
        "/images/..%5csecret.txt",
        "/images/%252e%252e%252fsecret.txt",
        "/images/....//....//secret.txt",
        "/images/%2Fetc%2Fpasswd",
        "/images//etc/passwd",
        f"/images/{absolute}",
        f"/images/{absolute}/thumb",
        f"/images{secret}",
        "/images/file:%2F%2F%2Fetc%2Fpasswd",
        "/images/north/photo_0.jpg",
        "/images/north%2fphoto_0.jpg",
        f"/images/{point_id}/..%2f..%2f..%2fsecret.txt",
        f"/images/{point_id}/thumb/..%2f..%2fsecret.txt",
        f"/images/{point_id}%00.jpg",
        f"/api/images/{absolute}",
        "/api/images/..%2f..%2fetc%2fpasswd",
        "/api/images/%2e%2e/similar",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/../pyproject.toml",
        "/..%2fpyproject.toml",
        "/%2e%2e/api/factory.py",
        "/web/../pyproject.toml",
        "/static/..%2f..%2fpyproject.toml",
        "/api/..%2fpyproject.toml",
        f"/{absolute}",
        "/%2Fetc%2Fpasswd",
        "/C:%5cWindows%5cwin.ini",
    ]


def test_path_traversal_never_serves_a_file_outside_the_library(
    client: FlaskClient, api_library: ApiLibrary
) -> None:
    for path in _traversals(api_library):
        response = client.get(path)
        body = response.get_data()
        assert SECRET.encode() not in body, path
        assert b"root:" not in body and b"[project]" not in body and b"create_app" not in body, path
        assert_error(response, 404)


# -- 405 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("delete", "/api/search"),
        ("put", "/api/search"),
        ("patch", "/api/search"),
        ("get", "/api/search/image"),
        ("put", "/api/search/image"),
        ("get", "/api/classify"),
        ("delete", "/api/classify"),
        ("post", "/api/health"),
        ("post", "/api/ready"),
        ("delete", "/api/stats"),
        ("post", "/api/classes"),
        ("post", "/api/images/{}"),
        ("delete", "/api/images/{}"),
        ("post", "/api/images/{}/similar"),
        ("post", "/images/{}"),
        ("put", "/images/{}"),
        ("delete", "/images/{}/thumb"),
        ("post", "/api/openapi.json"),
        ("delete", "/api/admin/ingest"),
        ("post", "/"),
    ],
)
def test_wrong_methods_are_405(
    client: FlaskClient, api_library: ApiLibrary, method: str, template: str
) -> None:
    response = getattr(client, method)(template.format(api_library.ids[ATTRIBUTED]))
    assert_error(response, 405, "method_not_allowed")
    assert response.headers.get("Allow")


# -- 413 -------------------------------------------------------------------------------------------------
@pytest.fixture
def small_client(make_app: Callable[..., Flask]) -> FlaskClient:
    """An app that takes uploads up to 1 MB."""
    return make_app(max_upload_mb=1).test_client()


@pytest.mark.parametrize("path", ["/api/search/image", "/api/classify"])
@pytest.mark.parametrize("size", [MB + 1, MB + 20_000, 2 * MB, 6 * MB])
def test_upload_over_max_upload_mb_is_413(
    small_client: FlaskClient, path: str, size: int, good_jpeg: bytes
) -> None:
    data = good_jpeg + b"\x00" * (size - len(good_jpeg))
    assert_error(small_client.post(path, data=upload(data)), 413, "payload_too_large")


@pytest.mark.parametrize("path", ["/api/search/image", "/api/classify"])
def test_upload_just_under_the_limit_is_accepted(
    small_client: FlaskClient, path: str, good_jpeg: bytes
) -> None:
    # Trailing bytes after the JPEG's end marker are ignored by decoders: a valid ~1 MB photo.
    data = good_jpeg + b"\x00" * (MB - len(good_jpeg))
    response = small_client.post(path, data=upload(data))
    assert response.status_code == 200, response.get_data()[:300]


def test_json_body_over_the_limit_is_413(small_client: FlaskClient) -> None:
    body = json.dumps({"q": "x" * (2 * MB)})
    assert_error(small_client.post("/api/search", data=body, content_type="application/json"), 413)


# -- 415 -------------------------------------------------------------------------------------------------
NOT_IMAGES = {
    "text": b"this is not an image at all\n" * 20,
    "truncated_jpeg": truncated_jpeg(9),
    "empty": b"",
    "declares_10G_pixels": declared_png(100_000, 100_000),
    "jpeg_header_only": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "heic": b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64,
    "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
    "zip": b"PK\x03\x04" + b"\x00" * 100,
    "psd": b"8BPS\x00\x01" + b"\x00" * 64,
}


@pytest.mark.parametrize("path", ["/api/search/image", "/api/classify"])
@pytest.mark.parametrize("kind", sorted(NOT_IMAGES))
def test_non_images_are_415(client: FlaskClient, path: str, kind: str) -> None:
    error = assert_error(client.post(path, data=upload(NOT_IMAGES[kind])), 415, "unsupported_image")
    if kind == "declares_10G_pixels":
        assert "pixels" in error["message"]


@pytest.mark.parametrize("path", ["/api/search/image", "/api/classify"])
def test_decompression_bomb_is_415(make_app: Callable[..., Flask], path: str) -> None:
    client = make_app(max_image_pixels=1_000_000).test_client()
    bomb = bomb_png(2000)  # 4 megapixels of one colour in a few kilobytes
    assert len(bomb) < 20_000
    error = assert_error(client.post(path, data=upload(bomb, "bomb.png")), 415, "unsupported_image")
    assert "pixels" in error["message"]


# -- 503 -------------------------------------------------------------------------------------------------
def _valid_requests(point_id: str, photo_bytes: bytes) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("get", "/api/ready", {}),
        ("get", "/api/search?q=pyramids", {}),
        ("get", "/api/search?q=pyramids&class=pyramids", {}),
        ("post", "/api/search", {"json": {"q": "pyramids"}}),
        ("post", "/api/search/image", {"data": upload(photo_bytes)}),
        ("get", f"/api/images/{point_id}", {}),
        ("get", f"/api/images/{point_id}/similar", {}),
        ("get", f"/images/{point_id}", {}),
        ("get", f"/images/{point_id}/thumb", {}),
        ("get", "/api/stats", {}),
        ("get", "/api/classes", {}),
    ]


def test_503_while_the_model_is_not_loaded(
    make_settings: Any, api_library: ApiLibrary, good_jpeg: bytes
) -> None:
    from api.factory import create_app

    client = create_app(make_settings(), load=False).test_client()
    requests = [
        *_valid_requests(api_library.ids[ATTRIBUTED], good_jpeg),
        ("post", "/api/classify", {"data": upload(good_jpeg)}),
    ]
    for method, path, kwargs in requests:
        response = getattr(client, method)(path, **kwargs)
        assert_error(response, 503, "not_ready")
        assert response.headers.get("Retry-After"), path
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/openapi.json").status_code == 200


def test_503_when_the_model_fails_to_load(make_settings: Any, tmp_path: Any) -> None:
    from api.factory import create_app

    app = create_app(make_settings(clip_model=str(tmp_path / "no-such-model")), load=True)
    app.extensions["wonders"].wait_loaded(60)
    client = app.test_client()
    assert_error(client.get("/api/ready"), 503, "load_failed")
    assert_error(client.get("/api/search?q=x"), 503)
    assert client.get("/api/health").status_code == 200


def test_503_when_the_store_is_unavailable(
    make_app: Callable[..., Flask], api_library: ApiLibrary, good_jpeg: bytes
) -> None:
    store = FlakyStore(api_library.store)
    client = make_app(store=store).test_client()
    point_id = api_library.ids[ATTRIBUTED]
    assert client.get("/api/ready").status_code == 200
    store.down = True
    for method, path, kwargs in _valid_requests(point_id, good_jpeg):
        response = getattr(client, method)(path, **kwargs)
        assert_error(response, 503, "store_unavailable")
        assert response.headers.get("Retry-After"), path
    # Classification needs only the model and the class vectors it already holds.
    assert client.post("/api/classify", data=upload(good_jpeg)).status_code == 200
    store.down = False
    for method, path, kwargs in _valid_requests(point_id, good_jpeg):
        assert getattr(client, method)(path, **kwargs).status_code == 200, path


# -- never a 500 -----------------------------------------------------------------------------------------
ODD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("get", "/api/search?q=%ED%A0%80", {}),
    ("get", "/api/search?q=%FF%FE%00", {}),
    ("post", "/api/search", {"data": b'{"q": "\\ud800\\udfff\\ud800"}', "content_type": "application/json"}),
    ("post", "/api/search", {"data": b'{"q": "x", "q": "y"}', "content_type": "application/json"}),
    ("post", "/api/search", {"data": '{"q": "x"}'.encode("utf-16"), "content_type": "application/json"}),
    ("post", "/api/search", {"json": {"q": "x", "min_score": 1e-400}}),
    ("get", "/api/search?q=x&k=1&k=200", {}),
    ("get", "/api/search?q=x&class=%00", {}),
    ("get", "/api/search?" + "q=x&" + "&".join(f"p{i}=1" for i in range(500)), {}),
    ("get", "/api/search?q=" + "%F0%9F%98%80" * 3000, {}),
    ("get", "/api/search?q=" + "a" * 20_001, {}),
    ("get", "/api/images/%ZZ", {}),
    ("get", "/images/%C0%AE%C0%AE%C0%AF", {}),
    ("post", "/api/classify", {"data": b'--zz\r\nContent-Disposition: form-data; name="image"\r\n\r\n'}),
    ("post", "/api/classify", {"data": b"garbage", "content_type": "multipart/form-data; boundary="}),
    ("post", "/api/classify", {"data": b"x", "headers": {"Content-Encoding": "gzip"}}),
    (
        "post",
        "/api/search/image?k=2",
        {"data": {"image": [(io.BytesIO(b"a"), "a.jpg"), (io.BytesIO(b"b"), "b")]}},
    ),
    ("get", "/api/ready", {"headers": {"Accept": "text/html"}}),
    ("options", "/api/search", {}),
    ("head", "/api/search?q=x", {}),
    ("trace", "/api/search", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), ODD_REQUESTS, ids=lambda v: str(v)[:40])
def test_odd_requests_are_never_a_server_error(
    client: FlaskClient, method: str, path: str, kwargs: Any
) -> None:
    response = client.open(path, method=method.upper(), **kwargs)
    assert response.status_code < 500, response.get_data()[:300]
    if response.status_code >= 400:
        assert_error(response, response.status_code)


def test_failed_uploads_write_nothing(client: FlaskClient, api_library: ApiLibrary) -> None:
    images, data = api_library.settings.images_dir, api_library.settings.data_dir
    before = (listing(images), listing(data))
    for payload in NOT_IMAGES.values():
        client.post("/api/classify", data=upload(payload, "../../../planted.jpg"))
    assert (listing(images), listing(data)) == before


def test_a_collection_of_another_model_is_refused_with_what_to_do(
    api_library: ApiLibrary, tmp_path: Path
) -> None:
    other_model = build_tiny_clip(tmp_path / "other-clip", dim=24)
    other = ClipModel(str(other_model), device="cpu", precision="fp32")
    settings = api_library.settings_with(clip_model=str(other_model))
    client = create_app(settings, other, api_library.store).test_client()
    ready = assert_error(client.get("/api/ready"), 503, "model_mismatch")
    assert "--recreate" in ready["message"]
    for response in (
        client.get("/api/search", query_string={"q": "a tower"}),
        client.get("/api/stats"),
        client.post("/api/classify", data=upload(jpeg_bytes(photo(3)))),
    ):
        assert_error(response, 503, "model_mismatch")
