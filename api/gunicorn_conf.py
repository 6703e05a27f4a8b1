"""gunicorn settings, from the environment.

Embedded store: ONE worker process (the Qdrant Edge shard belongs to one process) with several threads.
Qdrant server: several workers. workers x torch threads should not exceed the cores, so each worker's
torch threads default to cores / workers. Timeouts fit a slow CPU encode of a ViT-L/14.
"""

from __future__ import annotations

import os

_cores = os.cpu_count() or 2
_embedded = not os.environ.get("QDRANT_URL", "").strip()

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = 1 if _embedded else int(os.environ.get("WEB_CONCURRENCY", str(max(2, min(4, _cores)))))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
preload_app = False  # torch must not run before the fork: each worker loads the model itself
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
limit_request_line = 8190

if not os.environ.get("TORCH_THREADS"):
    os.environ["TORCH_THREADS"] = str(max(1, _cores // workers))
