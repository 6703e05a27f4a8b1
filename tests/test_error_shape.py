"""The API's one error shape, `{"error": {"code", "message", "details"?}}`, producer by producer.

Every error a client can get is written by one of these, and each is checked here with the assertion every
API test uses (`assert_error` in tests/api_helpers.py):
  - the body itself: `api/error_body.py`, which Flask's handlers and gunicorn's own answers both use;
  - Flask's handlers (`api/errors.py`): ApiError, HTTP errors, unexpected exceptions, also over HTTP;
  - request validation (webargs, through the same handler): 400 `invalid_parameter` with details;
  - gunicorn's own answers to requests it cannot parse (`api/gunicorn_errors.py`);
  - nginx's own answers (`deploy/nginx/templates/default.conf.template`, hand-written JSON);
  - the static web UI's 404, from Flask (`api/web.py`) and from nginx.
The status of each failure, endpoint by endpoint, is in tests/test_api_errors.py (same assertion).
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.api_helpers", "tests.nginx_support")

import http.client  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402

import requests  # noqa: E402
from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

from api.error_body import CONTENT_TYPE, error_body  # noqa: E402
from api.errors import ApiError, register_error_handlers  # noqa: E402
from api.gunicorn_errors import FALLBACK, GUNICORN_ERRORS, error_response_bytes  # noqa: E402
from api.web import register_web  # noqa: E402
from devtools.live_server import LiveServer, free_port  # noqa: E402
from tests.api_helpers import assert_error  # noqa: E402
from tests.nginx_support import NativeNginx, StubApi, needs_nginx, session, template_text  # noqa: E402

pytest_plugins = ["tests.api_helpers", "tests.nginx_support"]

TIMEOUT = 60
SECRET = "/srv/secret/path-7f3a"


def parsed(body: bytes, status: int = 400, content_type: str = CONTENT_TYPE) -> SimpleNamespace:
    """A body as `assert_error` takes a response."""
    return SimpleNamespace(status_code=status, headers={"Content-Type": content_type}, content=body)


def read_http(source: Any) -> SimpleNamespace:
    """One HTTP response read off a socket (or anything with `makefile`), as `assert_error` takes it."""
    response = http.client.HTTPResponse(source)
    response.begin()
    return SimpleNamespace(status_code=response.status, headers=response.headers, content=response.read())


class RawBytes:
    """Bytes that http.client can read as if they came off a socket."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BytesIO:
        """A file over the bytes (http.client's only use of its socket)."""
        return io.BytesIO(self.data)


# -- the body (api/error_body.py) -------------------------------------------------------------------------
def test_the_body_is_the_shape() -> None:
    body = error_body("not_found", "No image with this id.")
    assert assert_error(parsed(body, 404), 404, "not_found") == {
        "code": "not_found",
        "message": "No image with this id.",
    }
    assert body.endswith(b"\n")
    detailed = assert_error(
        parsed(error_body("invalid_parameter", "k: too big", {"query": {"k": ["big"]}})), 400
    )
    assert detailed["details"] == {"query": {"k": ["big"]}}
    assert "details" not in json.loads(error_body("bad_request", "Bad.", {}))["error"]  # empty: left out
    assert error_body("x", "Kremlin · Кремль").isascii()


# -- Flask's handlers (api/errors.py) ----------------------------------------------------------------------
@pytest.fixture
def failing_client(make_app: Callable[..., Flask]) -> FlaskClient:
    """The real app with two more routes: one raising an ApiError with details, one crashing."""
    app = make_app()

    def api_error() -> None:
        raise ApiError(409, "conflict", "Already running.", {"state": "running"})

    def crash() -> None:
        raise RuntimeError(f"disk error under {SECRET}")

    app.add_url_rule("/api/test-api-error", view_func=api_error)
    app.add_url_rule("/api/test-crash", view_func=crash)
    return app.test_client()


def test_an_api_error_keeps_its_status_code_and_details(failing_client: FlaskClient) -> None:
    error = assert_error(failing_client.get("/api/test-api-error"), 409, "conflict")
    assert error == {"code": "conflict", "message": "Already running.", "details": {"state": "running"}}


def test_an_unexpected_exception_is_a_500_that_tells_nothing(failing_client: FlaskClient) -> None:
    error = assert_error(failing_client.get("/api/test-crash"), 500, "internal_error")
    assert SECRET not in error["message"] and "RuntimeError" not in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("get", "/api/nope", 404, "not_found"), ("delete", "/api/search", 405, "method_not_allowed")],
)
def test_http_errors_are_the_shape(
    client: FlaskClient, method: str, path: str, status: int, code: str
) -> None:
    assert_error(getattr(client, method)(path), status, code)


@pytest.mark.slow
def test_flask_errors_reach_the_client_through_gunicorn_intact(live_server: LiveServer) -> None:
    url = live_server.url

    def classify(data: bytes) -> requests.Response:
        return requests.post(
            f"{url}/api/classify", files={"image": ("q.jpg", data, "image/jpeg")}, timeout=TIMEOUT
        )

    assert_error(requests.get(f"{url}/api/search", params={"q": "x", "k": 0}, timeout=TIMEOUT), 400)
    assert_error(requests.get(f"{url}/api/search", params={"q": "  "}, timeout=TIMEOUT), 400)
    assert_error(requests.get(f"{url}/api/images/{uuid.uuid4()}", timeout=TIMEOUT), 404)
    assert_error(requests.get(f"{url}/api/classify", timeout=TIMEOUT), 405)
    assert_error(classify(b"not a photo"), 415)
    # Over MAX_UPLOAD_MB (20 MB by default): the client still gets the JSON answer, not a reset.
    assert_error(classify(b"\xff\xd8" + b"\x00" * (21 * 1024 * 1024)), 413)


# -- validation (webargs, through api/errors.py) -----------------------------------------------------------
def test_invalid_parameters_are_400_with_details_by_location(client: FlaskClient) -> None:
    error = assert_error(client.get("/api/search?q=x&k=0"), 400, "invalid_parameter")
    assert error["message"].startswith("invalid parameters: k: ")
    assert list(error["details"]["query"]) == ["k"]


def test_an_invalid_json_body_is_400_with_details(client: FlaskClient) -> None:
    error = assert_error(client.post("/api/search", json={"q": "x", "k": "many"}), 400, "invalid_parameter")
    assert "k" in error["details"]["json"]


# -- gunicorn's own answers (api/gunicorn_errors.py) ------------------------------------------------------
@pytest.mark.parametrize("status", [*GUNICORN_ERRORS, 500])
def test_every_answer_gunicorn_makes_itself_is_the_shape(status: int) -> None:
    response = read_http(RawBytes(error_response_bytes(status, "Reason")))
    code, _ = GUNICORN_ERRORS.get(status, FALLBACK)
    assert_error(response, status, code)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Connection"] == "close"


MALFORMED = {
    "garbage request line": (b"GARBAGE\r\n\r\n", 400),
    "no HTTP version": (b"GET /api/health\r\n\r\n", 400),
    "unknown HTTP version": (b"GET /api/health HTTP/9.9\r\n\r\n", 400),
    "raw UTF-8 in the URL": ("GET /api/search?q=café HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 400),
    "NUL in the URL": (b"GET /api/he\x00alth HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "lower-case method": (b"get /api/health HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "header without colon": (b"GET /api/health HTTP/1.1\r\nHost: x\r\nBroken\r\n\r\n", 400),
    "negative Content-Length": (b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
    "Content-Length and chunked": (
        b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
        400,
    ),
    "URL over the request-line limit": (b"GET /api/search?q=" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    "one huge header": (b"GET /api/health HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
    "too many headers": (
        b"GET /api/health HTTP/1.1\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(200)) + b"\r\n",
        431,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MALFORMED))
def test_requests_gunicorn_refuses_get_the_shape(live_server: LiveServer, name: str) -> None:
    data, status = MALFORMED[name]
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        response = read_http(sock)
    error = assert_error(response, status, GUNICORN_ERRORS[status][0])
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "café" not in error["message"] and "GARBAGE" not in error["message"]  # no echo of the request


# -- nginx's own answers (deploy/nginx/templates/default.conf.template) ------------------------------------
NGINX_ANSWER = re.compile(
    r"location (@\w+) \{(?P<body>(?:(?!location ).)*?)return (?P<status>\d{3}) '(?P<json>[^']*)';", re.S
)


def nginx_answers() -> dict[str, tuple[int, str, str]]:
    """Each named location that answers JSON: (status, its directives, the body with the limit as "20")."""
    answers = {}
    for match in NGINX_ANSWER.finditer(template_text()):
        body = match["json"].replace("${NGINX_MAX_UPLOAD_MB}", "20").replace("\\n", "\n")
        answers[match[1]] = (int(match["status"]), match["body"], body)
    return answers


def test_every_answer_nginx_writes_itself_is_the_shape() -> None:
    answers = nginx_answers()
    assert set(answers) == {
        "@not_found",
        "@payload_too_large",
        "@api_unavailable",
        "@api_timeout",
        "@bad_request",
        "@method_not_allowed",
        "@not_implemented",
    }
    text = template_text()
    for name, (status, directives, body) in answers.items():
        assert re.search(r"types \{ \}.*default_type application/json;", directives, re.S), name
        assert "add_header X-Content-Type-Options nosniff always;" in directives, name
        assert re.search(rf"error_page [\d ]*{status}[\d ]*(=\d+ )?{name};", text), (
            f"no error_page for {name}"
        )
        assert_error(parsed(body.encode(), status), status)
    assert (
        json.loads(answers["@payload_too_large"][2])["error"]["message"] == "The upload is larger than 20 MB."
    )


@needs_nginx
def test_an_upload_over_the_limit_is_refused_by_nginx_in_the_shape(
    nginx_stub: NativeNginx, stub_api: StubApi
) -> None:
    payload = os.urandom(1024 * 1024 + 64 * 1024 + 1)  # more than 1 MB plus the framing allowance
    r = session().post(
        f"{nginx_stub.url}/api/search/image", files={"image": ("big.jpg", payload, "image/jpeg")}, timeout=30
    )
    error = assert_error(r, 413, "payload_too_large")
    assert error["message"] == "The upload is larger than 1 MB."
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert stub_api.requests_to("/api/search/image") == [], "the API must never see the oversize body"


@needs_nginx
def test_the_api_down_is_a_503_from_nginx_in_the_shape(nginx_factory: Any, web_root: Path) -> None:
    nginx = nginx_factory(f"127.0.0.1:{free_port()}", web_root=web_root)  # nothing listens there
    r = session().get(f"{nginx.url}/api/search", params={"q": "x"})
    assert_error(r, 503, "service_unavailable")
    assert r.headers["Retry-After"] == "5"
    assert session().get(f"{nginx.url}/").status_code == 200  # the UI is still there


# -- the static web UI's 404 (api/web.py, and nginx in front) ----------------------------------------------
@pytest.mark.parametrize("path", ["/missing.js", "/nope.html", "/..%2fpyproject.toml"])
def test_a_missing_ui_file_is_a_404_in_the_shape(client: FlaskClient, path: str) -> None:
    assert_error(client.get(path), 404, "not_found")


def test_a_missing_ui_is_a_404_that_says_so(tmp_path: Path) -> None:
    app = Flask(__name__)
    register_error_handlers(app)
    register_web(app, web_dir=tmp_path)  # no index.html there
    error = assert_error(app.test_client().get("/"), 404, "not_found")
    assert "web UI is not installed" in error["message"]


@needs_nginx
@pytest.mark.parametrize("path", ["/missing.js", "/.env", "/no/such/page"])
def test_a_missing_ui_file_is_a_404_from_nginx_in_the_shape(nginx_stub: NativeNginx, path: str) -> None:
    r = session().get(f"{nginx_stub.url}{path}")
    assert_error(r, 404, "not_found")
    assert r.headers["X-Content-Type-Options"] == "nosniff"


@needs_nginx
def test_the_api_404s_pass_through_nginx_untouched(nginx_stub: NativeNginx) -> None:
    r = session().get(f"{nginx_stub.url}/api/nope")
    assert assert_error(r, 404, "not_found")["message"] == "stub"  # the stub API's, not nginx's
