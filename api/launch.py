"""`make run` / `make serve`: start gunicorn, unless a Wonders service already serves here.

A second `make run` says where the running one is and exits 0, instead of failing on a busy port."""

from __future__ import annotations

import os
import socket
import sys

from core.settings import Settings, load_settings
from ingest.handoff import find_service


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts connections on host:port."""
    address = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def already_running(settings: Settings) -> str | None:
    """The message for a port already taken (by this library's service or another program), else None."""
    if find_service(settings.data_dir, settings.port) is not None:
        return (
            f"Wonders is already running: open http://localhost:{settings.port} "
            "(stop it with Ctrl+C in its terminal). New photos: `make ingest`."
        )
    if port_in_use(settings.host, settings.port):
        return (
            f"Port {settings.port} is already in use: if that is Wonders, open http://localhost:{settings.port}; "
            "otherwise choose another port, e.g. `PORT=8001 make run`."
        )
    return None


def main() -> int:
    """Exit 0 with a message when the port is taken; otherwise become gunicorn."""
    settings = load_settings()
    message = already_running(settings)
    if message:
        print(message)
        return 0
    argv = [sys.executable, "-m", "gunicorn", "-c", "api/gunicorn_conf.py", "api.wsgi:app"]
    os.execv(sys.executable, argv)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
