"""Start the real thing for tests: gunicorn serving the app with the tiny model, on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A running gunicorn: its url, environment (for `python -m ingest` beside it) and log file."""

    url: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, object] = field(default_factory=dict)

    def log(self) -> str:
        """What gunicorn printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop gracefully, then kill."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _load_failed(response: requests.Response) -> bool:
    try:
        return bool(response.json()["error"]["code"] == "load_failed")
    except (ValueError, KeyError, TypeError):
        return False


def start_gunicorn(
    env: dict[str, str], log_path: Path, wait_ready: bool = True, timeout: float = 90
) -> LiveServer:
    """Run `gunicorn -c api/gunicorn_conf.py api.wsgi:app` like `make run` does, on a free port."""
    port = free_port()
    full_env = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1", "HF_HUB_OFFLINE": "1"}
    full_env["PYTHONPATH"] = str(REPO)
    full_env.setdefault("GUNICORN_ACCESS_LOG", "")
    # A fixed library unless the caller asks for the service's own first-run work; never the network.
    full_env.setdefault("INDEX_ON_START", "false")
    full_env.setdefault("FETCH_DATASET_IF_EMPTY", "false")
    log_file = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "api/gunicorn_conf.py", "api.wsgi:app"],
        cwd=REPO,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", port, full_env, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{server.log()}")
        try:
            response = requests.get(
                f"{server.url}/api/ready" if wait_ready else f"{server.url}/api/health", timeout=2
            )
            if response.status_code == 200:
                return server
            if wait_ready and _load_failed(response):  # it will never be ready: say why now
                server.stop()
                raise RuntimeError(f"gunicorn's model load failed:\n{server.log()}")
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"gunicorn did not become ready in {timeout} s:\n{server.log()}")
