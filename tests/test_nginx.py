"""The web service's nginx, run for real: the compose stack's template rendered for a native nginx.

deploy/nginx/templates/default.conf.template is what the official nginx image renders at start. Here the same
file is rendered with the upstream on 127.0.0.1, the root on a local folder and every path in a temporary
prefix, then checked with `nginx -t` and run (as the current user) in front of:
  - a small stub HTTP server standing in for the API: proxying, uploads, the 413 JSON answer, thumbnail
    caching, gzip, nginx's own JSON errors when the API is down;
  - the real gunicorn app with the tiny CLIP (the `live_server` fixture of tests/conftest.py).

Needs Debian's `nginx` package (apt-get install nginx); skipped with that reason where it is missing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "deploy" / "nginx" / "templates" / "default.conf.template"
UPLOAD_LIMIT_HOOK = REPO / "deploy" / "nginx" / "entrypoint" / "16-wonders-upload-limit.envsh"
COMPOSE_FILE = REPO / "docker-compose.yml"
WEB_DIR = REPO / "web"

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")

# Variables set at start by the image's entrypoint (15-local-resolvers.envsh) and by our hook.
COMPUTED_AT_START = {"NGINX_LOCAL_RESOLVERS", "NGINX_CLIENT_MAX_BODY_SIZE"}
TEMPLATE_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

MINIMAL_MIME_TYPES = """types {
    text/html html; text/css css; application/javascript js; application/json json;
    image/jpeg jpg jpeg; image/png png; image/svg+xml svg; text/plain txt;
}"""


# ---------------------------------------------------------------------------------------------------------
# Rendering and running nginx natively


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def template_text() -> str:
    return TEMPLATE.read_text(encoding="utf-8")


def upload_limit_hook(max_upload_mb: str) -> subprocess.CompletedProcess[str]:
    """Source the entrypoint hook with POSIX sh, as the image does; prints its two outputs."""
    return subprocess.run(
        [
            "sh",
            "-c",
            f'. "{UPLOAD_LIMIT_HOOK}" && printf "%s\\n%s\\n" "$NGINX_CLIENT_MAX_BODY_SIZE" "$NGINX_MAX_UPLOAD_MB"',
        ],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NGINX_MAX_UPLOAD_MB": max_upload_mb},
        capture_output=True,
        text=True,
        timeout=30,
    )


def upload_limits(max_upload_mb: str) -> tuple[str, str]:
    """(client_max_body_size, the limit as written in messages) for MAX_UPLOAD_MB, from the hook."""
    result = upload_limit_hook(max_upload_mb)
    assert result.returncode == 0, result.stderr
    body_size, text = result.stdout.split()
    return body_size, text


def render(listen_port: int, upstream: str, web_root: Path, max_upload_mb: str, cache_dir: Path) -> str:
    """The template with its variables replaced, as the image's entrypoint would."""
    body_size, limit_text = upload_limits(max_upload_mb)
    values = {
        "NGINX_LISTEN_PORT": str(listen_port),
        "NGINX_API_UPSTREAM": upstream,
        "NGINX_WEB_ROOT": str(web_root),
        "NGINX_MAX_UPLOAD_MB": limit_text,
        "NGINX_CLIENT_MAX_BODY_SIZE": body_size,
        "NGINX_CACHE_DIR": str(cache_dir),
        "NGINX_LOCAL_RESOLVERS": "127.0.0.1",
    }
    text = template_text()
    unknown = set(TEMPLATE_VAR.findall(text)) - set(values)
    assert not unknown, f"template variables this test does not render: {sorted(unknown)}"
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text


def main_conf(prefix: Path, server_conf: Path) -> str:
    """An nginx.conf like the official image's, with every writable path under `prefix`."""
    mime = Path("/etc/nginx/mime.types")
    types = f"include {mime};" if mime.is_file() else MINIMAL_MIME_TYPES
    user = ""
    if os.geteuid() == 0:  # workers would otherwise run as nobody and could not use the temp folders
        import grp
        import pwd

        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    return f"""
{user}
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    {types}
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    access_log {prefix}/access.log;
    include {server_conf};
}}
"""


@dataclass
class NativeNginx:
    """A rendered configuration in a temporary prefix; `start()` runs it."""

    prefix: Path
    port: int
    conf: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, *extra: str) -> list[str]:
        assert NGINX is not None
        return [
            NGINX,
            "-p",
            str(self.prefix),
            "-e",
            str(self.prefix / "error.log"),
            "-c",
            str(self.conf),
            *extra,
        ]

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        out = open(self.prefix / "stdout.log", "wb")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}:\n{self.error_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"nginx did not listen on {self.port}:\n{self.error_log()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: the workers finish, then the master exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def make_nginx(tmp: Path, upstream: str, web_root: Path, max_upload_mb: str) -> NativeNginx:
    """Render the template and the main configuration into `tmp` (nothing started)."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server_conf = tmp / "wonders.conf"
    server_conf.write_text(render(port, upstream, web_root, max_upload_mb, tmp / "cache"), encoding="utf-8")
    conf = tmp / "nginx.conf"
    conf.write_text(main_conf(tmp, server_conf), encoding="utf-8")
    return NativeNginx(prefix=tmp, port=port, conf=conf)


@pytest.fixture
def nginx_factory(tmp_path: Path) -> Iterator[Any]:
    """Start native nginx instances in front of an upstream; all stopped at the end of the test."""
    started: list[NativeNginx] = []

    def start(upstream: str, web_root: Path = WEB_DIR, max_upload_mb: str = "20") -> NativeNginx:
        nginx = make_nginx(tmp_path / f"nginx{len(started)}", upstream, web_root, max_upload_mb)
        checked = nginx.check()
        assert checked.returncode == 0, checked.stderr
        nginx.start()
        started.append(nginx)
        return nginx

    yield start
    for nginx in started:
        nginx.stop()


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never through a proxy from the environment
    return s


# ---------------------------------------------------------------------------------------------------------
# A stub standing in for the API


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body_len: int
    body_sha256: str


@dataclass
class StubApi:
    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)

    @property
    def upstream(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path.split("?")[0] == path]


THUMB_BYTES = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
SEARCH_RESULTS = [
    {"id": f"{i:08d}-0000-0000-0000-000000000000", "score": 0.3, "thumb_url": f"/images/{i}/thumb"}
    for i in range(40)
]


def make_stub() -> StubApi:
    stub: StubApi

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _record(self, body: bytes = b"") -> None:
            stub.seen.append(
                Seen(self.command, self.path, dict(self.headers), len(body), hashlib.sha256(body).hexdigest())
            )

        def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def do_GET(self) -> None:
            self._record()
            path, _, query = self.path.partition("?")
            if path == "/api/health":
                self._json(200, {"status": "ok"})
            elif path == "/api/ready":
                self._json(503, {"error": {"code": "not_ready", "message": "stub: the model is loading"}})
            elif path == "/api/search":
                self._json(200, {"results": SEARCH_RESULTS, "query": query, "k": 12, "offset": 0})
            elif re.fullmatch(r"/images/[^/]+/thumb", path):
                self._send(200, THUMB_BYTES, "image/jpeg", {"Cache-Control": "no-cache", "ETag": '"t1"'})
            elif re.fullmatch(r"/images/[^/]+", path):
                self._send(200, THUMB_BYTES * 4, "image/jpeg", {"Cache-Control": "private"})
            else:
                self._json(404, {"error": {"code": "not_found", "message": "stub"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            self._record(body)
            self._json(
                200,
                {
                    "received": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "content_type": self.headers.get("Content-Type"),
                },
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub = StubApi(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return stub


@pytest.fixture
def stub_api() -> Iterator[StubApi]:
    stub = make_stub()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


@pytest.fixture
def web_root(tmp_path: Path) -> Path:
    """A UI folder of our own, so these tests do not depend on the state of web/."""
    root = tmp_path / "webroot"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>Wonders</title><h1>Wonders</h1>\n")
    (root / "app.js").write_text("// app\n" + "console.log('wonders');\n" * 200)
    (root / "style.css").write_text("body { margin: 0; }\n" * 200)
    (root / ".env").write_text("SECRET=1\n")
    return root


@pytest.fixture
def nginx_stub(nginx_factory: Any, stub_api: StubApi, web_root: Path) -> NativeNginx:
    """nginx with a 1 MB upload limit (MAX_UPLOAD_MB=1) in front of the stub API."""
    nginx: NativeNginx = nginx_factory(stub_api.upstream, web_root=web_root, max_upload_mb="1")
    return nginx


# ---------------------------------------------------------------------------------------------------------
# The configuration itself


def test_template_variables_are_the_ones_compose_gives_the_web_service() -> None:
    used = set(TEMPLATE_VAR.findall(template_text()))
    assert used, "the template uses no variables"
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    env = compose["services"]["web"]["environment"]
    filt = env["NGINX_ENVSUBST_FILTER"]
    # The image substitutes only variables matching the filter: nginx's own $variables are left alone.
    assert all(re.search(filt, name) for name in used)
    missing = used - set(env) - COMPUTED_AT_START
    assert not missing, f"the template needs variables docker-compose.yml does not set: {sorted(missing)}"
    assert env.get("NGINX_ENTRYPOINT_LOCAL_RESOLVERS"), "NGINX_LOCAL_RESOLVERS is only set when this is on"
    # The web service and the API get the same upload limit.
    api_env = compose["services"]["api"]["environment"]
    assert env["NGINX_MAX_UPLOAD_MB"] == api_env["MAX_UPLOAD_MB"] == "${MAX_UPLOAD_MB:-20}"
    # The hook is mounted where the entrypoint sources it, before 20-envsubst-on-templates.sh.
    mounts = compose["services"]["web"]["volumes"]
    assert (
        f"./{UPLOAD_LIMIT_HOOK.relative_to(REPO)}:/docker-entrypoint.d/{UPLOAD_LIMIT_HOOK.name}:ro" in mounts
    )
    assert "15-" < UPLOAD_LIMIT_HOOK.name < "20-"


def test_template_variables_are_always_braced() -> None:
    """The image's envsubst also replaces $NAME: only ${NGINX_...} may name an environment variable."""
    text = template_text()
    assert not re.search(r"\$NGINX_", text)
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(TEMPLATE_VAR.findall(text))


@pytest.mark.parametrize(
    ("mb", "body_size", "text"),
    [("20", "20544k", "20"), ("20.0", "20544k", "20"), ("2.5", "2624k", "2.5"), ("1", "1088k", "1")],
)
def test_upload_limit_hook_adds_the_api_multipart_allowance(mb: str, body_size: str, text: str) -> None:
    from api.factory import MULTIPART_OVERHEAD
    from core.settings import Settings

    assert os.access(UPLOAD_LIMIT_HOOK, os.X_OK), "the image's entrypoint ignores hooks without the exec bit"
    assert upload_limits(mb) == (body_size, text)
    settings = Settings(_env_file=None, max_upload_mb=float(mb))  # type: ignore[call-arg]
    assert int(body_size.removesuffix("k")) * 1024 == settings.max_upload_bytes + MULTIPART_OVERHEAD
    assert f"{settings.max_upload_mb:g}" == text  # the API's own 413 message writes it so


@pytest.mark.parametrize("bad", ["abc", "1.2.3", "20m", "-1"])
def test_upload_limit_hook_refuses_nonsense(bad: str) -> None:
    result = upload_limit_hook(bad)
    assert result.returncode != 0
    assert "MAX_UPLOAD_MB" in result.stderr


def test_pages_get_the_api_content_security_policy() -> None:
    from api.web import CSP

    match = re.search(r'"~\^text/html"\s+"([^"]+)";', template_text())
    assert match, "no CSP for text/html in the template"
    assert match.group(1) == CSP


def test_template_settings() -> None:
    text = template_text()
    assert re.search(r"client_max_body_size\s+\$\{NGINX_CLIENT_MAX_BODY_SIZE\};", text)
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        match = re.search(rf"{directive}\s+(\d+)s;", text)
        assert match and int(match.group(1)) >= 60, f"{directive} should allow slow CPU encodes"
    assert re.search(r"^\s*gzip on;", text, re.M)
    gzip_types = re.search(r"gzip_types([^;]+);", text)
    assert gzip_types
    for mime in ("application/json", "application/javascript", "text/css"):
        assert mime in gzip_types.group(1)
    assert re.search(r"error_page\s+413\s+@payload_too_large;", text)


@needs_nginx
def test_nginx_accepts_the_rendered_config_with_the_repo_web_root(tmp_path: Path) -> None:
    nginx = make_nginx(tmp_path, "127.0.0.1:9", WEB_DIR, "20")
    result = nginx.check()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@needs_nginx
def test_nginx_refuses_a_broken_render(tmp_path: Path) -> None:
    """The check above is a real check: a value the template cannot take fails `nginx -t`."""
    nginx = make_nginx(tmp_path, "127.0.0.1:9", WEB_DIR, "20")
    conf = nginx.prefix / "wonders.conf"
    text = conf.read_text()
    assert "client_max_body_size 20544k;" in text
    conf.write_text(text.replace("client_max_body_size 20544k;", "client_max_body_size 20.5m;"))
    assert nginx.check().returncode != 0


# ---------------------------------------------------------------------------------------------------------
# In front of the stub API


@needs_nginx
def test_search_is_proxied_with_query_and_forwarded_headers(
    nginx_stub: NativeNginx, stub_api: StubApi
) -> None:
    r = session().get(f"{nginx_stub.url}/api/search", params={"q": "Eiffel Tower at night", "k": "12"})
    assert r.status_code == 200
    assert r.json()["query"] == "q=Eiffel+Tower+at+night&k=12"
    (seen,) = stub_api.requests_to("/api/search")
    assert seen.headers["X-Forwarded-For"] == "127.0.0.1"
    assert seen.headers["X-Forwarded-Proto"] == "http"
    assert seen.headers["Host"] == f"127.0.0.1:{nginx_stub.port}"


@needs_nginx
def test_multipart_upload_reaches_the_api_intact(nginx_stub: NativeNginx, stub_api: StubApi) -> None:
    payload = os.urandom(700 * 1024)  # under the 1 MB limit of this nginx
    r = session().post(
        f"{nginx_stub.url}/api/search/image",
        files={"image": ("photo.jpg", payload, "image/jpeg")},
        data={"k": "12"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    (seen,) = stub_api.requests_to("/api/search/image")
    assert body["received"] == int(r.request.headers["Content-Length"]) == seen.body_len
    assert body["sha256"] == hashlib.sha256(r.request.body).hexdigest()  # type: ignore[arg-type]
    assert body["content_type"] == r.request.headers["Content-Type"]
    assert body["content_type"].startswith("multipart/form-data; boundary=")


@needs_nginx
def test_a_photo_of_exactly_the_limit_passes(nginx_stub: NativeNginx, stub_api: StubApi) -> None:
    r = session().post(
        f"{nginx_stub.url}/api/classify",
        files={"image": ("photo.jpg", os.urandom(1024 * 1024), "image/jpeg")},  # MAX_UPLOAD_MB=1
        timeout=30,
    )
    assert r.status_code == 200
    assert r.json()["received"] > 1024 * 1024  # the photo plus its multipart framing


@needs_nginx
def test_oversize_upload_is_refused_by_nginx_with_the_api_error_shape(
    nginx_stub: NativeNginx, stub_api: StubApi
) -> None:
    payload = os.urandom(1024 * 1024 + 64 * 1024 + 1)  # more than 1 MB plus the framing allowance
    r = session().post(
        f"{nginx_stub.url}/api/search/image",
        files={"image": ("big.jpg", payload, "image/jpeg")},
        timeout=30,
    )
    assert r.status_code == 413
    assert r.headers["Content-Type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["message"] == "The upload is larger than 1 MB."
    assert set(r.json()) == {"error"} and set(error) == {"code", "message"}
    assert stub_api.requests_to("/api/search/image") == [], "the API must never see the oversize body"


@needs_nginx
def test_thumbnails_are_cacheable_for_a_day_and_cached_by_nginx(
    nginx_stub: NativeNginx, stub_api: StubApi
) -> None:
    s = session()
    url = f"{nginx_stub.url}/images/0123abcd-0000-0000-0000-000000000000/thumb"
    first = s.get(url)
    second = s.get(url)
    for r in (first, second):
        assert r.status_code == 200
        assert r.content == THUMB_BYTES
        assert r.headers["Content-Type"] == "image/jpeg"
        # The API's own "no-cache" is replaced, not doubled.
        assert r.headers["Cache-Control"] == "public, max-age=86400, immutable"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert first.headers["X-Cache-Status"] == "MISS"
    assert second.headers["X-Cache-Status"] == "HIT"
    assert len(stub_api.requests_to("/images/0123abcd-0000-0000-0000-000000000000/thumb")) == 1
    # Revalidation works on the cached copy.
    revalidated = s.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert revalidated.status_code == 304


@needs_nginx
def test_full_images_are_cacheable_by_browsers(nginx_stub: NativeNginx) -> None:
    r = session().get(f"{nginx_stub.url}/images/0123abcd-0000-0000-0000-000000000000")
    assert r.status_code == 200
    assert r.content == THUMB_BYTES * 4
    assert r.headers["Cache-Control"] == "public, max-age=86400"


@needs_nginx
def test_json_js_and_css_are_gzipped(nginx_stub: NativeNginx) -> None:
    s = session()
    headers = {"Accept-Encoding": "gzip"}
    search = s.get(f"{nginx_stub.url}/api/search", params={"q": "pyramids"}, headers=headers)
    assert search.headers.get("Content-Encoding") == "gzip"
    assert search.json()["results"] == SEARCH_RESULTS  # requests decompresses
    for name in ("app.js", "style.css"):
        r = s.get(f"{nginx_stub.url}/{name}", headers=headers)
        assert r.status_code == 200
        assert r.headers.get("Content-Encoding") == "gzip", name
    thumb = s.get(f"{nginx_stub.url}/images/abc/thumb", headers=headers)
    assert "Content-Encoding" not in thumb.headers  # JPEG is not compressed again


@needs_nginx
def test_static_ui_is_served_and_revalidated(nginx_stub: NativeNginx) -> None:
    s = session()
    r = s.get(f"{nginx_stub.url}/")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "Wonders" in r.text
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "Content-Security-Policy" not in s.get(f"{nginx_stub.url}/app.js").headers
    again = s.get(f"{nginx_stub.url}/", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304
    assert s.get(f"{nginx_stub.url}/.env").status_code == 404
    assert s.get(f"{nginx_stub.url}/missing.js").status_code == 404
    health = s.get(f"{nginx_stub.url}/nginx-health")
    assert health.status_code == 200 and health.text == "ok\n"


@needs_nginx
def test_api_errors_pass_through_untouched(nginx_stub: NativeNginx) -> None:
    r = session().get(f"{nginx_stub.url}/api/ready")
    assert r.status_code == 503
    assert r.json() == {"error": {"code": "not_ready", "message": "stub: the model is loading"}}


@needs_nginx
def test_api_down_gives_a_json_503(nginx_factory: Any, web_root: Path) -> None:
    nginx = nginx_factory(f"127.0.0.1:{free_port()}", web_root=web_root)  # nothing listens there
    r = session().get(f"{nginx.url}/api/search", params={"q": "x"})
    assert r.status_code == 503
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"]["code"] == "service_unavailable"
    assert r.headers["Retry-After"] == "5"
    assert session().get(f"{nginx.url}/").status_code == 200  # the UI is still there


# ---------------------------------------------------------------------------------------------------------
# In front of the real API


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def live_api(request: pytest.FixtureRequest) -> Any:
    """The real app under gunicorn (tests/conftest.py's `live_server`)."""
    try:
        return request.getfixturevalue("live_server")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py provides no `live_server` fixture yet")


def live_upload_limit_mb(live_api: Any) -> str:
    """MAX_UPLOAD_MB of the live server (its environment, else the app's default)."""
    from core.settings import Settings

    env = getattr(live_api, "env", {}) or {}
    return str(env.get("MAX_UPLOAD_MB") or Settings.model_fields["max_upload_mb"].default)


@needs_nginx
@pytest.mark.slow
def test_nginx_in_front_of_the_real_gunicorn(live_api: Any, nginx_factory: Any) -> None:
    api = urlsplit(live_api.url)
    limit_mb = live_upload_limit_mb(live_api)
    nginx: NativeNginx = nginx_factory(f"{api.hostname}:{api.port}", web_root=WEB_DIR, max_upload_mb=limit_mb)
    s = session()
    base = nginx.url

    assert s.get(f"{base}/api/health", timeout=30).status_code == 200
    assert s.get(f"{base}/api/ready", timeout=60).status_code == 200

    found = s.get(f"{base}/api/search", params={"q": "a photo of a waterfall", "k": "3"}, timeout=60)
    assert found.status_code == 200, found.text
    results = found.json()["results"]
    assert results, "the live server's library should not be empty"

    thumb_url = results[0]["thumb_url"]
    first = s.get(base + thumb_url, timeout=30)
    second = s.get(base + thumb_url, timeout=30)
    assert first.status_code == second.status_code == 200
    assert first.headers["Content-Type"].startswith("image/")
    assert first.headers["Cache-Control"] == "public, max-age=86400, immutable"
    assert (first.headers["X-Cache-Status"], second.headers["X-Cache-Status"]) == ("MISS", "HIT")
    assert first.content == second.content
    assert s.get(base + results[0]["image_url"], timeout=30).status_code == 200

    photo = {"image": ("q.png", png_bytes(), "image/png")}
    by_image = s.post(f"{base}/api/search/image", files=photo, timeout=120)
    assert by_image.status_code == 200, by_image.text
    assert by_image.json()["results"]
    classified = s.post(f"{base}/api/classify", files=photo, timeout=120)
    assert classified.status_code == 200, classified.text

    # The API's own errors pass through nginx unchanged.
    missing = s.get(f"{base}/api/images/00000000-0000-0000-0000-000000000000", timeout=30)
    assert missing.status_code == 404
    assert set(missing.json()["error"]) >= {"code", "message"}

    # nginx and the API draw the upload line at the same place. A photo of exactly MAX_UPLOAD_MB passes
    # both (and is refused for what it is: random bytes, not an image).
    limit_bytes = int(float(limit_mb) * 1024 * 1024)

    def upload(size: int) -> requests.Response:
        files = {"image": ("big.jpg", os.urandom(size), "image/jpeg")}
        return s.post(f"{base}/api/search/image", files=files, timeout=120)

    at_limit = upload(limit_bytes)
    assert at_limit.status_code == 415, at_limit.text
    assert at_limit.json()["error"]["code"] == "unsupported_image"
    # One byte more: nginx lets the request through (it fits the framing allowance) and the API refuses it.
    by_api = upload(limit_bytes + 1)
    assert by_api.status_code == 413, by_api.text
    assert "X-Cache-Status" not in by_api.headers
    # Far more: nginx refuses it before the API sees it, with the same answer.
    by_nginx = upload(limit_bytes + 256 * 1024)
    assert by_nginx.status_code == 413
    assert by_nginx.headers["Content-Type"].startswith("application/json")
    assert by_nginx.json() == by_api.json()
    assert by_api.json()["error"]["code"] == "payload_too_large"

    if (WEB_DIR / "index.html").is_file():
        page = s.get(f"{base}/", timeout=30)
        assert page.status_code == 200
        assert page.headers["Content-Type"].startswith("text/html")
        assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
