"""gunicorn settings, from Wonders' one settings object (core/settings.py); nothing else is read here.

A store that belongs to one process (the embedded Qdrant Edge shard) gets ONE worker process with several
threads; a Qdrant server gets several workers (WEB_CONCURRENCY). workers x torch threads should not
exceed the cores, so unless TORCH_THREADS is set each worker gets cores / workers. Timeouts fit a slow CPU
encode of a ViT-L/14.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# Metrics (api/metrics.py): each worker writes its values to files in this folder, and a scrape adds up
# those of every worker. Set here, in the master, before anything imports prometheus_client (the `api`
# package does: its value class is chosen at import), and so before the fork; a fresh
# folder per start, or the operator's own one emptied, so no old values are counted.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    for _old in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        _old.unlink()
    _own_metrics_dir = None
else:
    _own_metrics_dir = tempfile.mkdtemp(prefix="wonders-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api import gunicorn_errors
from api.startup import data_dir_problem, remove_admin_token
from core.settings import load_settings
from core.store import store_backend

_settings = load_settings()  # checked before any worker starts: a bad value stops here, clearly
_cores = os.cpu_count() or 2
if store_backend(_settings).single_process:
    _problem = data_dir_problem(_settings.data_dir)
    if _problem:
        print(f"Cannot start: {_problem}", file=sys.stderr)
        sys.exit(2)

# Loopback by default; the compose stack's nginx is in front when reachable from a network (its image
# sets HOST=0.0.0.0). Slow clients no longer tie up threads (api/buffered_worker.py).
bind = f"{_settings.host}:{_settings.port}"
if store_backend(_settings).single_process:
    workers = 1
else:
    workers = _settings.web_concurrency or max(2, min(4, _cores))
# gthread, with every request read in full before a thread is given to it (slow clients cost no thread).
worker_class = "api.buffered_worker.BufferedThreadWorker"
threads = _settings.gunicorn_threads
timeout = _settings.gunicorn_timeout
graceful_timeout = 30
keepalive = 5
preload_app = False  # torch must not run before the fork: each worker loads the model itself
accesslog = _settings.gunicorn_access_log or None  # empty: no access log
logger_class = "api.quiet_access.QuietAccessLogger"  # the UI's polls are not logged
errorlog = "-"
loglevel = _settings.log_level.lower()
limit_request_line = 8190

# Workers read their settings again after the fork (api/wsgi.py); gunicorn puts raw_env into the
# environment before it forks them, so each one's Settings sees its share of the cores.
raw_env = [] if _settings.torch_threads else [f"TORCH_THREADS={max(1, _cores // workers)}"]


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: its live gauges (queue depth, running jobs) stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


gunicorn_errors.install()  # in the master, before the fork


def on_exit(server: object) -> None:
    """gunicorn stops: the admin token its worker wrote is no use to anyone any more (a worker killed
    with -9 never ran its own clean-up); and the metrics folder it made goes too."""
    if store_backend(_settings).single_process:
        remove_admin_token(_settings.data_dir)
    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)
