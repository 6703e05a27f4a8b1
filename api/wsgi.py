"""The WSGI entry point for gunicorn: `gunicorn -c api/gunicorn_conf.py api.wsgi:app`.

Imported in each worker after the fork (no preload), so torch never runs in the master. The model loads
and warms up in a background thread; /api/ready answers 503 until it is done.
"""

from __future__ import annotations

import atexit
import logging
import sys

from api.factory import create_app
from api.routes.admin import write_admin_token
from api.startup import remove_admin_token
from core.model import keep_freed_memory
from core.settings import load_settings
from core.store import store_backend

keep_freed_memory()  # before the loader and request threads start (see its docstring)
settings = load_settings()
logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
        sys.exit(3)  # gunicorn's code for a worker that cannot boot: it stops instead of retrying
    app.config["WONDERS_ADMIN_TOKEN"] = token
    atexit.register(remove_admin_token, settings.data_dir, token)
