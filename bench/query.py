"""Queries over HTTP, through gunicorn started the way `make run` starts it, against the bare encoder.

The bare encoder (this process) and the server (another process) never run at the same time: each sample
is a pair, bare then HTTP, so both sides of a ratio see the same machine. Text queries are all distinct
(the server caches text vectors; the cache is measured apart, by repeating a query). Uploads are a
multi-megapixel JPEG, decoded by the server with the product's draft-mode decoder; the bare image time is
the encoder on the same photo already decoded the same way.

Concurrency: 8 client threads, each with its own connection. The server's CPU seconds per request come
from its worker process's CPU time (/proc/<pid>/stat) over the run; `cores / CPU-seconds per request` is
the most requests per second the cores allow at that cost, and efficiency = throughput / that.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from bench.util import (
    CpuWindow,
    children,
    concurrent_load,
    median,
    memory_status,
    percentile,
    ratio,
    wait_for_quiet,
)

log = logging.getLogger(__name__)

SUBJECTS = [
    "the Eiffel Tower at night",
    "hot air balloons over Cappadocia",
    "a waterfall in a green forest",
    "the pyramids of Giza at sunset",
    "rainbow mountains in China",
    "the Moscow Kremlin in winter",
    "ancient ruins on a mountain",
    "a skyscraper above the clouds",
    "a turquoise lake with cliffs",
    "stone pillars in the fog",
    "a castle wall with red towers",
    "desert dunes and a camel",
]


def distinct_query(i: int, tag: str) -> str:
    """A different, realistic query for every (i, tag), as long as the same i with another tag (so the
    bare encoder and the server get texts of equal length), and never one the server has cached."""
    return f"{SUBJECTS[i % len(SUBJECTS)]}, photo {tag}{i:06d}"


def _stats(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": round(median(samples) * 1000, 2),
        "p95_ms": round(percentile(samples, 95) * 1000, 2),
        "p95_over_p50": round(ratio(percentile(samples, 95), median(samples)), 3),
    }


def run(
    model: str,
    encoder: Any,
    data_dir: Path,
    images_dir: Path,
    upload: Path,
    workdir: Path,
    samples_text: int,
    samples_image: int,
    concurrent_clients: int,
    requests_per_client_text: int,
    requests_per_client_image: int,
    ready_timeout: float,
) -> dict[str, Any]:
    """The query section (see the module docstring)."""
    import requests

    from core.images import decode_image
    from devtools.live_server import start_gunicorn

    env = {
        "CLIP_MODEL": model,
        "CLIP_DEVICE": "auto",
        "CLIP_PRECISION": "auto",
        "DATA_DIR": str(data_dir),
        "IMAGES_DIR": str(images_dir),
        "GUNICORN_ACCESS_LOG": "",
        "LOG_LEVEL": "WARNING",
    }
    started = time.perf_counter()
    server = start_gunicorn(env, workdir / "gunicorn.log", timeout=ready_timeout)
    ready_s = time.perf_counter() - started
    result: dict[str, Any] = {"ready_s": round(ready_s, 2)}
    try:
        workers = children(server.process.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {workers}")
        worker = workers[0]
        result["server_torch_threads"] = server.env.get("TORCH_THREADS") or "gunicorn_conf default"
        result["memory_after_load_mib"] = memory_status(worker)
        session = requests.Session()
        url = server.url
        photo = upload.read_bytes()
        size = encoder.identity.image_size
        decoded = decode_image(photo, 50_000_000, min_side=2 * size).image

        def get_search(q: str, s: requests.Session = session) -> requests.Response:
            return s.get(f"{url}/api/search", params={"q": q, "k": 12}, timeout=120)

        def post_image(path: str, s: requests.Session = session) -> requests.Response:
            return s.post(f"{url}{path}", files={"image": ("photo.jpg", photo, "image/jpeg")}, timeout=300)

        took: list[float] = []  # the server's own clock (Flask before_request to the answer's shaping)

        def timed(call: Any, *args: Any) -> float:
            t = time.perf_counter()
            response = call(*args)
            elapsed = time.perf_counter() - t
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
            took.append(float(response.json().get("took_ms", 0.0)) / 1000)
            return elapsed

        # warm both sides
        for i in range(3):
            timed(get_search, f"warm-up query {i}")
            encoder.text.encode_texts([f"warm-up text {i}"])
        timed(post_image, "/api/search/image")
        timed(post_image, "/api/classify")
        encoder.image.encode_images([decoded])

        def bare_encode(call: Any, *args: Any) -> float:
            t = time.perf_counter()
            call(*args)
            return time.perf_counter() - t

        def pair(i: int, bare: Any, http: Any) -> None:
            """Run sample i's two timed steps after a quiet moment, 50 ms apart.

            The gap lets the other process's OpenMP threads, which spin for a few ms after their last
            parallel region, fall asleep: a bench running torch beside the server is not what a real
            server has around it. Which side goes first alternates with i, since the first after an
            idle pause runs a little slower."""
            first, second = (bare, http) if i % 2 else (http, bare)
            wait_for_quiet((worker,), max_wait=5)
            first()
            time.sleep(0.05)
            second()

        # Pairs: the bare encoder and the same kind of request over HTTP.
        bare_text, http_text, server_text = [], [], []
        with CpuWindow((worker, os.getpid())) as text_window:
            for i in range(samples_text):

                def bare_step(i: int = i) -> None:
                    bare_text.append(bare_encode(encoder.text.encode_texts, [distinct_query(i, "a")]))

                def http_step(i: int = i) -> None:
                    http_text.append(timed(get_search, distinct_query(i, "b")))  # never cached
                    server_text.append(took[-1])

                pair(i, bare_step, http_step)
        cached_query = distinct_query(0, "b")
        cached = [timed(get_search, cached_query) for _ in range(samples_text)]

        bare_image, http_image, http_classify, server_image, server_classify = [], [], [], [], []
        with CpuWindow((worker, os.getpid())) as image_window:
            for i in range(samples_image):

                def bare_image_step() -> None:
                    bare_image.append(bare_encode(encoder.image.encode_images, [decoded]))

                def http_image_steps() -> None:
                    http_image.append(timed(post_image, "/api/search/image"))
                    server_image.append(took[-1])
                    time.sleep(0.05)
                    http_classify.append(timed(post_image, "/api/classify"))
                    server_classify.append(took[-1])

                pair(i, bare_image_step, http_image_steps)

        result["one_client"] = {
            "bare_text_encode": _stats(bare_text),
            "text_search": _stats(http_text) | {"server_took_p50_ms": round(median(server_text) * 1000, 2)},
            "text_search_cached": _stats(cached),
            "bare_image_encode": _stats(bare_image),
            "image_search": _stats(http_image)
            | {"server_took_p50_ms": round(median(server_image) * 1000, 2)},
            "classify": _stats(http_classify)
            | {"server_took_p50_ms": round(median(server_classify) * 1000, 2)},
            "text_search_vs_bare": round(ratio(median(http_text), median(bare_text)), 3),
            "image_search_vs_bare": round(ratio(median(http_image), median(bare_image)), 3),
            "classify_vs_bare": round(ratio(median(http_classify), median(bare_image)), 3),
            "server_and_bench_cpu_per_text_pair_ms": round(text_window.own / samples_text * 1000, 1),
            "other_cores_text": round(text_window.other_cores, 2),
            "other_cores_image": round(image_window.other_cores, 2),
        }

        def load(kind: str, per_client: int) -> dict[str, Any]:
            def send(own: requests.Session, n: int, j: int) -> requests.Response:
                if kind == "text_search":
                    return get_search(distinct_query(n * 1_000 + j, "c"), own)
                return post_image("/api/search/image" if kind == "image_search" else "/api/classify", own)

            return concurrent_load(worker, concurrent_clients, per_client, send)

        result["concurrent"] = {
            "text_search": load("text_search", requests_per_client_text),
            "image_search": load("image_search", requests_per_client_image),
            "classify": load("classify", requests_per_client_image),
        }
        result["memory_after_queries_mib"] = memory_status(worker)
        result["cache_stats"] = session.get(f"{url}/api/stats", timeout=30).json().get("query_cache")
    finally:
        server.stop()
    return result


def check_no_fp32_copy(memory: dict[str, float], params: dict[str, Any]) -> dict[str, Any]:
    """Is there room in the server's memory for an fp32 copy of the weights beside the low-precision one?

    Everything the process holds beyond its weights (Python, torch, tokenizer, buffers) is
    `VmRSS - param_mib`; an fp32 copy would need `fp32_param_mib` of it."""
    rss = float(memory.get("VmRSS", 0.0))
    anon = float(memory.get("RssAnon", rss))
    beyond = anon - float(params["param_mib"])
    return {
        "rss_anon_mib": anon,
        "weights_mib": params["param_mib"],
        "anon_beyond_weights_mib": round(beyond, 1),
        "fp32_copy_would_need_mib": params["fp32_param_mib"],
        # None: the weights are too small to show in the RSS (the tiny test model).
        "no_fp32_copy": None
        if float(params["fp32_param_mib"]) < 100
        else bool(beyond < float(params["fp32_param_mib"]) or params["dtypes"] == ["float32"]),
    }
