"""gunicorn settings, from the environment.

Embedded store: ONE worker process (the Qdrant Edge shard belongs to one process) with several threads.
Qdrant server: several workers. workers x torch threads should not exceed the cores, so each worker's
torch threads default to cores / workers. Timeouts fit a slow CPU encode of a ViT-L/14.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import gunicorn.util

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.settings import load_settings

_settings = load_settings()  # checked before any worker starts: a bad value stops here, clearly
_cores = os.cpu_count() or 2
_embedded = _settings.embedded

# Loopback by default: gunicorn's threads are tied up by slow clients, so anything reachable from a
# network belongs behind a proxy (the compose stack's nginx; its image sets HOST=0.0.0.0).
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{_settings.port}"
workers = 1 if _embedded else int(os.environ.get("WEB_CONCURRENCY", str(max(2, min(4, _cores)))))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
preload_app = False  # torch must not run before the fork: each worker loads the model itself
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = _settings.log_level.lower()
limit_request_line = 8190

# Metrics (api/metrics.py): each worker writes its values to files in this folder, and a scrape adds up
# those of every worker. Set here, in the master, before any worker imports prometheus_client; a fresh
# folder per start, or the operator's own one emptied, so no old values are counted.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    for _old in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        _old.unlink()
    _own_metrics_dir = None
else:
    _own_metrics_dir = tempfile.mkdtemp(prefix="wonders-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: its live gauges (queue depth, running jobs) stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """gunicorn stops: the metrics folder it made goes too."""
    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)


if not os.environ.get("TORCH_THREADS"):
    os.environ["TORCH_THREADS"] = str(max(1, _cores // workers))


# gunicorn answers requests it cannot parse (bad request line, headers too large, URL over
# limit_request_line, bad chunked framing) itself, before the app, with an HTML page that echoes the
# request. Those answers use the API's one JSON error shape too. Set here, in the master, before the fork.
_GUNICORN_ERRORS = {
    400: ("bad_request", "The request is not valid HTTP."),
    403: ("forbidden", "Request forbidden."),
    414: ("uri_too_long", "The URL is too long; send long text queries with POST /api/search."),
    417: ("expectation_failed", "The Expect header cannot be met."),
    431: ("headers_too_large", "The request headers are too large."),
    501: ("not_implemented", "This transfer coding is not supported."),
}


def _write_json_error(sock: object, status_int: int, reason: str, mesg: str) -> None:
    code, message = _GUNICORN_ERRORS.get(
        status_int, ("internal_error", "Something went wrong on the server.")
    )
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn.util.write_error = _write_json_error
