"""First run: from starting the service to a page that answers a search, and searches while it indexes.

Three gunicorn starts the way `make run` starts them (the service indexes its library in the background):
- an empty library: the time to the first answered search is the model's load and warm-up, the baseline;
- a library of `photos` photos, never indexed: the time to the first answered search must be that
  baseline plus a few seconds, whatever the library's size (the indexing runs behind it); then text
  searches while the indexing goes on;
- the same library with the indexing off: the same text searches on an idle server.
The ratio of the text-search p50 during indexing to the idle p50 is the cost of indexing to a user.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from bench.query import distinct_query
from bench.util import median, percentile, ratio

log = logging.getLogger(__name__)


def _library(folder: Path, count: int) -> Path:
    """`count` small distinct JPEGs (generated once, cached by the bench)."""
    from bench.photos import photo_files

    photo_files(folder, count, (320, 240), first_seed=50_000)
    return folder


def _time_to_search(env: dict[str, str], log_path: Path, timeout: float) -> tuple[Any, float]:
    """Start gunicorn; seconds from the start until GET /api/search answers 200."""
    import requests

    from devtools.live_server import start_gunicorn

    started = time.perf_counter()
    server = start_gunicorn(env, log_path, wait_ready=False, timeout=timeout)
    deadline = started + timeout
    while time.perf_counter() < deadline:
        try:
            answer = requests.get(f"{server.url}/api/search", params={"q": "a first search"}, timeout=30)
            if answer.status_code == 200:
                return server, time.perf_counter() - started
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"no search answered within {timeout} s:\n{server.log()}")


def _text_latencies(url: str, count: int, tag: str, while_indexing: bool) -> tuple[list[float], int]:
    """Seconds per distinct text search; with `while_indexing`, only those asked while it was running."""
    import requests

    session = requests.Session()
    samples: list[float] = []
    for i in range(count * 3):
        if while_indexing and session.get(f"{url}/api/ingest", timeout=30).json().get("state") != "running":
            break
        started = time.perf_counter()
        response = session.get(f"{url}/api/search", params={"q": distinct_query(i, tag)}, timeout=120)
        response.raise_for_status()
        samples.append(time.perf_counter() - started)
        if len(samples) >= count:
            break
    done = session.get(f"{url}/api/ingest", timeout=30).json().get("done", 0)
    return samples, int(done)


def _wait_indexing_started(url: str, timeout: float = 60.0) -> None:
    """The service starts its indexing just after the model is ready: wait until it is under way."""
    import requests

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if requests.get(f"{url}/api/ingest", timeout=30).json().get("state") != "idle":
            return
        time.sleep(0.05)


def _stats(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "p50_ms": round(median(samples) * 1000, 1),
        "p95_ms": round(percentile(samples, 95) * 1000, 1),
    }


def run(model: str, cache: Path, workdir: Path, photos: int, queries: int, timeout: float) -> dict[str, Any]:
    """The first-run section (see the module docstring)."""
    base = {
        "CLIP_MODEL": model,
        "CLIP_DEVICE": "auto",
        "CLIP_PRECISION": "auto",
        "GUNICORN_ACCESS_LOG": "",
        "LOG_LEVEL": "WARNING",
        "FETCH_DATASET_IF_EMPTY": "false",
    }
    library = _library(cache / "photos" / f"first-run-{photos}", photos)
    empty = workdir / "first-run-empty"
    empty.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"photos": photos}

    env = {
        **base,
        "IMAGES_DIR": str(empty),
        "DATA_DIR": str(workdir / "data-empty"),
        "INDEX_ON_START": "true",
    }
    server, seconds = _time_to_search(env, workdir / "first-run-empty.log", timeout)
    server.stop()
    result["empty_library_to_search_s"] = round(seconds, 2)

    data = workdir / "data-first-run"
    shutil.rmtree(data, ignore_errors=True)
    env = {**base, "IMAGES_DIR": str(library), "DATA_DIR": str(data), "INDEX_ON_START": "true"}
    server, seconds = _time_to_search(env, workdir / "first-run-library.log", timeout)
    try:
        result["library_to_search_s"] = round(seconds, 2)
        result["library_minus_empty_s"] = round(seconds - result["empty_library_to_search_s"], 2)
        _wait_indexing_started(server.url)
        during, done = _text_latencies(server.url, queries, "during", while_indexing=True)
        result["text_during_indexing"] = _stats(during)
        result["indexed_when_measured"] = done
    finally:
        server.stop()

    env = {**base, "IMAGES_DIR": str(library), "DATA_DIR": str(data), "INDEX_ON_START": "false"}
    server, _ = _time_to_search(env, workdir / "first-run-idle.log", timeout)
    try:
        idle, _ = _text_latencies(server.url, queries, "idle", while_indexing=False)
        result["text_idle"] = _stats(idle)
    finally:
        server.stop()
    if during and idle:
        result["during_over_idle_p50"] = round(ratio(median(during), median(idle)), 2)
    log.info("first run: %s", result)
    return result
