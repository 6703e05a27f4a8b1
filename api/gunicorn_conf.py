"""gunicorn settings, from the environment.

Embedded store: ONE worker process (the Qdrant Edge shard belongs to one process) with several threads.
Qdrant server: several workers. workers x torch threads should not exceed the cores, so each worker's
torch threads default to cores / workers. Timeouts fit a slow CPU encode of a ViT-L/14.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.settings import load_settings

_settings = load_settings()  # checked before any worker starts: a bad value stops here, clearly
_cores = os.cpu_count() or 2
_embedded = _settings.embedded

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{_settings.port}"
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

if not os.environ.get("TORCH_THREADS"):
    os.environ["TORCH_THREADS"] = str(max(1, _cores // workers))
