"""The WSGI entry point for gunicorn: `gunicorn -c api/gunicorn_conf.py api.wsgi:app`.

Imported in each worker after the fork (no preload), so torch never runs in the master. The model loads
and warms up in a background thread; /api/ready answers 503 until it is done.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading

from api.factory import create_app
from api.routes.admin import write_admin_token
from api.startup import remove_admin_token
from core.model import ModelUnavailable, keep_freed_memory
from core.quiet_logs import quiet_library_logs
from core.settings import load_settings
from core.store import store_backend

# gunicorn's master stops (instead of starting another worker) when a worker exits with this code.
WORKER_BOOT_ERROR = 3

keep_freed_memory()  # before the loader and request threads start (see its docstring)
settings = load_settings()
logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
quiet_library_logs()
app = create_app(settings)
if store_backend(settings).single_process:
    # The store is this process's: `make ingest` hands its work over, proving access with this token.
    try:
        token = write_admin_token(settings.data_dir)
    except OSError as err:
        # gunicorn_conf.py checks this before starting; this is the same line for other servers.
        logging.getLogger(__name__).critical(
            "DATA_DIR (%s) is not writable: %s", settings.data_dir, err.strerror or err
        )
        sys.exit(
            WORKER_BOOT_ERROR
        )  # gunicorn's code for a worker that cannot boot: it stops instead of retrying
    app.config["WONDERS_ADMIN_TOKEN"] = token
    atexit.register(remove_admin_token, settings.data_dir, token)
    if settings.index_on_start:
        # Serve at once; the library is indexed in the background (fetched first when empty).
        app.extensions["wonders_indexer"].start()


def _say_ready() -> None:
    """One line when the page answers searches: where to open it."""
    service = app.extensions["wonders"]
    service.wait_loaded()
    if isinstance(service.load_exception, ModelUnavailable):
        # Nothing can be served without the model (the service logged why): stop gunicorn, whose
        # master halts when a worker exits with this code.
        logging.shutdown()
        os._exit(WORKER_BOOT_ERROR)
    if service.load_error is None:
        host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::", "::1") else settings.host
        logging.getLogger("wonders").info("Wonders is ready: open http://%s:%s", host, settings.port)


threading.Thread(target=_say_ready, name="wonders-ready-line", daemon=True).start()
