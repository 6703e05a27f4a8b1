"""`python -m bench.attacks`: issue 19's three measured attacks against the served process, as `make run` serves it.

1. slow clients: 100 slow-header and 20 slow-body connections (reopened when the server cuts them off) while a
   normal client searches; its latencies (p50, p99) are the figure.
2. worst-case uploads inside the limits: 8 at once (50-megapixel PNGs of the costliest modes, each under
   MAX_UPLOAD_MB); the worker's resident memory is sampled: peak above idle, and 10 s after the last answer.
3. a hung store: a Qdrant "server" that accepts connections and never answers; 32 searches hang on it while
   /api/health is asked every 50 ms; the slowest liveness answer is the figure.

The model is the real ViT-L/14 architecture with random weights (bench/model.py; `--model tiny` for a quick
run). Writes a JSON report (`--out`) and prints a summary. tests/test_hardening.py runs it behind `-m chaos`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image

from bench.model import build_model
from bench.photos import photo_files
from bench.util import children, memory_status, percentile
from devtools.hung_qdrant import HungQdrant
from devtools.live_server import LiveServer, start_gunicorn

REPO = Path(__file__).resolve().parent.parent


def _env(model: Path, root: Path, **extra: str) -> dict[str, str]:
    return {
        "CLIP_MODEL": str(model),
        "IMAGES_DIR": str(root / "images"),
        "DATA_DIR": str(root / "data"),
        "HF_HUB_OFFLINE": "1",
        "LOG_LEVEL": "INFO",
        **extra,
    }


def _worker_pid(server: LiveServer) -> int:
    found = children(server.process.pid)
    if not found:
        raise RuntimeError("gunicorn has no worker")
    return found[0]


def _rss_mb(pid: int) -> float:
    return memory_status(pid)["VmRSS"]


# -- 1. slow clients ------------------------------------------------------------------------------------------
class SlowClients:
    """Connections that send a request a byte at a time, reopened whenever the server closes them."""

    def __init__(self, port: int, slow_headers: int, slow_bodies: int) -> None:
        self.port = port
        self.counts = {"header": slow_headers, "body": slow_bodies}
        self.stop = threading.Event()
        self.reopened = 0
        self.cut_off = 0
        self.threads = [
            threading.Thread(target=self._run, args=(kind,), daemon=True)
            for kind, n in self.counts.items()
            for _ in range(n)
        ]

    def _open(self, kind: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        if kind == "header":
            sock.sendall(b"GET /api/search?q=slow HTTP/1.1\r\nHost: localhost\r\n")
        else:
            sock.sendall(
                b"POST /api/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100000\r\n\r\n{"q": "'
            )
        return sock

    def _run(self, kind: str) -> None:
        sock = self._open(kind)
        while not self.stop.is_set():
            try:
                sock.sendall(b"X-a: b\r\n"[:1] if kind == "header" else b"a")
                time.sleep(0.5)
            except OSError:
                self.cut_off += 1
                sock.close()
                try:
                    sock = self._open(kind)
                    self.reopened += 1
                except OSError:
                    time.sleep(0.5)
        sock.close()

    def __enter__(self) -> SlowClients:
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)


def _searches(server: LiveServer, seconds: float, first: int) -> tuple[list[float], int]:
    """Latencies (ms) of one client's searches, each a new text, for `seconds`; and how many failed."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    i = first
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            response = requests.get(
                f"{server.url}/api/search", params={"q": f"a photo of place number {i}"}, timeout=30
            )
            ok = response.status_code == 200
        except requests.RequestException:
            ok = False
        latencies.append((time.perf_counter() - started) * 1000)
        errors += not ok
        i += 1
    return latencies, errors


def slow_clients(server: LiveServer, seconds: float) -> dict[str, Any]:
    """Search latencies of a normal client while 100 slow-header and 20 slow-body connections hold on,
    beside the same client alone just before (the machine's own noise)."""
    alone, _ = _searches(server, seconds / 2, 0)
    with SlowClients(server.port, 100, 20) as attack:
        latencies, errors = _searches(server, seconds, 100_000)
    return {
        "alone_search_p50_ms": round(percentile(alone, 50), 1),
        "alone_search_p99_ms": round(percentile(alone, 99), 1),
        "slow_header_connections": 100,
        "slow_body_connections": 20,
        "searches": len(latencies),
        "errors": errors,
        "search_p50_ms": round(percentile(latencies, 50), 1),
        "search_p99_ms": round(percentile(latencies, 99), 1),
        "search_max_ms": round(max(latencies), 1),
        "slow_connections_cut_off_and_reopened": attack.reopened,
    }


# -- 2. worst-case uploads --------------------------------------------------------------------------------------
def worst_uploads(limit_pixels: int = 50_000_000) -> list[tuple[str, bytes]]:
    """Eight PNGs at the pixel limit in the costliest shapes and modes, each a few hundred KB."""
    rng = np.random.default_rng(0)

    def png(image: Image.Image) -> bytes:
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=6)
        return out.getvalue()

    side = int(limit_pixels**0.5) - 1
    tall = (int((limit_pixels / 16) ** 0.5) - 1, 0)
    tall = (tall[0], limit_pixels // tall[0] - 1)  # 16:1: cut at nothing, converted at full size
    rgba = Image.new("RGBA", tall, (10, 20, 30, 128))
    rgba.paste((200, 0, 0, 255), (0, 0, tall[0] // 2, tall[1]))
    gray16 = Image.fromarray(np.full((tall[1], tall[0]), 40000, np.uint16))
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    palette = Image.new("P", tall, 3)
    palette.info["transparency"] = 3
    noise = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).resize(tall)
    shapes = [
        ("rgba-16to1.png", png(rgba)),
        ("gray16-16to1.png", png(gray16)),
        ("rgba-square.png", png(square)),
        ("palette-alpha-16to1.png", png(palette)),
    ]
    del rgba, gray16, square, palette
    noisy = png(noise)
    if len(noisy) < 20 * 1024 * 1024:
        shapes.append(("rgb-16to1.png", noisy))
    return [shapes[i % len(shapes)] for i in range(8)]


def uploads(server: LiveServer) -> dict[str, Any]:
    """Peak and settled resident memory of the worker around 8 concurrent worst-case uploads."""
    pid = _worker_pid(server)
    files = worst_uploads()
    time.sleep(2.0)
    idle = _rss_mb(pid)
    peak = [idle]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak.append(_rss_mb(pid))
            except (OSError, KeyError):
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    def post(item: tuple[str, bytes]) -> int:
        name, data = item
        response = requests.post(
            f"{server.url}/api/search/image", files={"image": (name, data, "image/png")}, timeout=300
        )
        return response.status_code

    with ThreadPoolExecutor(len(files)) as pool:
        statuses = list(pool.map(post, files))
    answered = time.monotonic()
    time.sleep(max(0.0, 10.0 - (time.monotonic() - answered)))
    stop.set()
    sampler.join(2)
    after = _rss_mb(pid)
    return {
        "uploads": [{"file": name, "bytes": len(data)} for name, data in files],
        "statuses": statuses,
        "idle_rss_mb": idle,
        "peak_rss_mb": max(peak),
        "peak_above_idle_mb": round(max(peak) - idle, 1),
        "after_10s_rss_mb": after,
        "after_10s_above_idle_mb": round(after - idle, 1),
    }


# -- 3. a hung store ---------------------------------------------------------------------------------------------
_HUNG_SEARCHES = """
import json, sys, threading, time
import requests
url, outcomes = sys.argv[1], []
def search(i):
    started = time.perf_counter()
    try:
        status = requests.get(url + "/api/search", params={"q": f"q{i}"}, timeout=120).status_code
    except requests.RequestException:
        status = 0
    outcomes.append((status, (time.perf_counter() - started) * 1000))
threads = [threading.Thread(target=search, args=(i,)) for i in range(32)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(outcomes))
"""


def hung_store(model: Path, root: Path, seconds: float) -> dict[str, Any]:
    """Liveness latencies while 32 searches hang on a Qdrant server that never answers."""
    root.mkdir(parents=True, exist_ok=True)
    hung = HungQdrant()
    env = _env(model, root, QDRANT_URL=f"http://127.0.0.1:{hung.port}", WEB_CONCURRENCY="1")
    server = start_gunicorn(env, root / "hung.log", wait_ready=False, timeout=300)
    try:
        deadline = time.monotonic() + 300
        while "model ready" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.5)
        # The hung searches come from another process: 32 client threads waking at once in this one
        # would hold its GIL and delay the liveness timing below (a client's artefact, not the server's).
        searches = subprocess.Popen(
            [sys.executable, "-c", _HUNG_SEARCHES, server.url],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        health: list[float] = []
        slow_at: list[tuple[float, float]] = []  # (seconds into the attack, ms) of answers over 100 ms
        begun = time.perf_counter()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            requests.get(f"{server.url}/api/health", timeout=30).raise_for_status()
            health.append((time.perf_counter() - started) * 1000)
            if health[-1] > 100:
                slow_at.append((round(started - begun, 2), round(health[-1], 1)))
            time.sleep(0.05)
        out, _ = searches.communicate(timeout=180)
        outcomes = [(int(status), float(ms)) for status, ms in json.loads(out)]
        later = time.perf_counter()
        fast = requests.get(f"{server.url}/api/search", params={"q": "after"}, timeout=60)
        return {
            "hung_searches": 32,
            "health_checks": len(health),
            "health_p50_ms": round(percentile(health, 50), 1),
            "health_max_ms": round(max(health), 1),
            "health_p99_ms": round(percentile(health, 99), 1),
            "health_over_100ms": sum(ms > 100 for ms in health),
            "health_over_100ms_at_s": slow_at,
            "search_statuses": sorted({s for s, _ in outcomes}),
            "slowest_search_ms": round(max(ms for _, ms in outcomes), 1),
            "search_after_breaker_opened": {
                "status": fast.status_code,
                "ms": round((time.perf_counter() - later) * 1000, 1),
            },
        }
    finally:
        server.stop()
        hung.close()


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the three attacks; print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.attacks", description=__doc__)
    parser.add_argument("--model", default="vit-l14", choices=["vit-l14", "tiny"])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of attacks 1 and 3")
    parser.add_argument(
        "--attacks", default="slow,uploads,hung", help="which to run, comma-separated: slow, uploads, hung"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "attacks.json")
    args = parser.parse_args(argv)
    chosen = set(args.attacks.split(","))
    model = build_model(args.model)
    report: dict[str, Any] = {"model": args.model, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="wonders-attacks-") as tmp:
        root = Path(tmp)
        photo_files(root / "images", 24, (640, 480))
        env = _env(model, root)
        subprocess.run(
            [sys.executable, "-m", "ingest", "--quiet", "--no-crosscheck"],
            cwd=REPO,
            env={**os.environ, **env, "PYTHONPATH": str(REPO)},
            check=True,
        )
        _say("serving")
        server = start_gunicorn(env, root / "gunicorn.log", timeout=300)
        try:
            if "slow" in chosen:
                _say("1. slow clients")
                report["slow_clients"] = slow_clients(server, args.seconds)
                _say(f"   {report['slow_clients']}")
            if "uploads" in chosen:
                _say("2. worst-case uploads")
                report["uploads"] = uploads(server)
                _say(f"   {report['uploads']}")
        finally:
            server.stop()
        if "hung" in chosen:
            _say("3. a hung store")
            report["hung_store"] = hung_store(model, root / "hung", args.seconds)
            _say(f"   {report['hung_store']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
