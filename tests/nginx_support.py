"""Native nginx for tests: the compose stack's template rendered for a local nginx, and a stub API.

deploy/nginx/templates/default.conf.template is what the official nginx image renders at start. Here the same
file is rendered with the upstream on 127.0.0.1, the root on a local folder and every path in a temporary
prefix, checked with `nginx -t` and run (as the current user). Test modules load this file as a pytest plugin
(`pytest_plugins = ["tests.nginx_support"]`) for its fixtures: `nginx_factory`, `stub_api`, `web_root` and
`nginx_stub`. Needs Debian's `nginx` package (apt-get install nginx); `needs_nginx` skips where it is missing.
"""

from __future__ import annotations

import hashlib
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

import pytest
import requests

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
