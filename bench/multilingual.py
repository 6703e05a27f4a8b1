"""The multilingual text tower: Russian vs English text search over HTTP in one server, the memory the
tower adds, and 8 concurrent clients mixing both.

Latency: one gunicorn (started as `make run` starts it) with CLIP and the multilingual tower; Russian
queries (the multilingual tower) and English ones (CLIP's text tower) alternate, all distinct (no cache
hits), so both sides of the ratio see the same machine at the same moments.

Memory: a fresh process does what the server's loader does, CLIP first, then the multilingual tower
(search/text_towers.py), in bf16 (the target's precision, whatever `auto` gives on this CPU), and reads
its resident memory between the two: what the tower adds, beside the size of its weights; again in the
precision `auto` serves it in when that is another (int8 on a CPU without bf16). (The server's own RSS
mixes in whatever its requests allocated.)

The tower: with `real=True`, `devtools.tiny_mclip.build_real_size_mclip`, the published XLM-R-large
architecture (24 x 1024, 250,002 tokens, 560 M parameters) with random weights; otherwise a small stand-in
of the same layout (said so in the report), whose figures say nothing about the real model's cost.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.query import SUBJECTS
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

REPO = Path(__file__).resolve().parent.parent
# The English subjects of bench/query.py, in Russian: about as many tokens for XLM-R as for CLIP.
SUBJECTS_RU = [
    "Эйфелева башня ночью",
    "воздушные шары над Каппадокией",
    "водопад в зелёном лесу",
    "пирамиды Гизы на закате",
    "радужные горы в Китае",
    "Московский Кремль зимой",
    "древние руины на горе",
    "небоскрёб над облаками",
    "бирюзовое озеро со скалами",
    "каменные столбы в тумане",
    "крепостная стена с красными башнями",
    "песчаные дюны и верблюд",
]


def query(i: int, tag: str, russian: bool) -> str:
    """A distinct query (never cached by the server): a subject, then a numbered tag."""
    if russian:
        return f"{SUBJECTS_RU[i % len(SUBJECTS_RU)]}, фото {tag}{i:06d}"
    return f"{SUBJECTS[i % len(SUBJECTS)]}, photo {tag}{i:06d}"


def build_tower(cache: Path, real: bool, dim: int) -> tuple[Path, str]:
    """The tower's folder and a description of it."""
    from devtools.tiny_mclip import TINY_WORDS, build_real_size_mclip, build_tiny_mclip

    if real:
        words = sorted({w.strip(",") for s in SUBJECTS_RU for w in s.split()} | {"фото", *TINY_WORDS})
        folder = build_real_size_mclip(cache / "mclip-xlmr-large", words=words)
        return folder, "XLM-R-large M-CLIP architecture (random weights, 560 M parameters)"
    folder = cache / f"mclip-small-{dim}"
    if not (folder / "pytorch_model.bin").is_file():
        build_tiny_mclip(folder, dim=dim, hidden=256, layers=4)
    return folder, "SMALL STAND-IN (hidden 256, 4 layers): not the real model's cost"


_MEMORY_PROBE = """
import json, sys
from core.model import keep_freed_memory, load_clip
from core.settings import Settings
from search.cache import QueryCache
from search.text_towers import TextTowers
from bench.util import memory_status
import os
keep_freed_memory()
settings = Settings(
    _env_file=None,
    clip_model=sys.argv[1],
    multilingual_model=sys.argv[2],
    clip_precision=sys.argv[3],
    multilingual_precision=sys.argv[4],
)
clip = load_clip(settings)
clip.warm_up()
before = memory_status(os.getpid())
towers = TextTowers(settings, QueryCache(0))
towers.load(clip.model_name, clip.dim)
after = memory_status(os.getpid())
tower = towers.multilingual
if tower is None:
    raise SystemExit(f"the tower did not load: {towers.state()}")
params = list(tower.torch_module().parameters()) + list(tower._head.parameters())
# int8's Linear weights are packed, not parameters: counted from the quantized modules.
import torch
quantized_linear = torch.ao.nn.quantized.dynamic.Linear
params += [m.weight() for m in tower.torch_module().modules() if isinstance(m, quantized_linear)]
print(json.dumps({
    "before": before, "after": after, "precision": tower.precision,
    "dtypes": sorted({str(p.dtype).replace("torch.", "") for p in params}),
    "param_mib": round(sum(p.numel() * p.element_size() for p in params) / 2**20, 1),
    "parameters_m": round(sum(p.numel() for p in params) / 1e6, 1),
}))
"""


def measure_memory(
    clip_model: str, tower: Path, precision: str, tower_precision: str = "auto"
) -> dict[str, Any]:
    """Resident memory before and after the tower loads beside CLIP, in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, clip_model, str(tower), precision, tower_precision],
        cwd=REPO,
        env={"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed: {done.stderr[-3000:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    found["added_rss_anon_mib"] = round(found["after"]["RssAnon"] - found["before"]["RssAnon"], 1)
    found["added_rss_mib"] = round(found["after"]["VmRSS"] - found["before"]["VmRSS"], 1)
    return found


def run(
    model: str,
    data_dir: Path,
    images_dir: Path,
    workdir: Path,
    cache: Path,
    real: bool,
    dim: int,
    samples: int,
    concurrent_clients: int,
    requests_per_client: int,
    ready_timeout: float,
) -> dict[str, Any]:
    """The multilingual section (see the module docstring)."""
    import requests

    from devtools.live_server import start_gunicorn

    t = time.perf_counter()
    tower, described = build_tower(cache, real, dim)
    result: dict[str, Any] = {
        "tower": described,
        "real_size": real,
        "build_s": round(time.perf_counter() - t, 1),
    }
    from core.model.device import resolve_device
    from core.model.multilingual import tower_precision

    # The target is for bf16 weights: measured in bf16 even where the CPU lacks bf16 instructions. The
    # server below runs the tower in `auto` (int8 on a CPU without bf16): measured too, unless that is bf16.
    result["memory"] = measure_memory(model, tower, "bf16")
    served = tower_precision("auto", resolve_device("auto"))
    result["memory_served"] = result["memory"] if served == "bf16" else measure_memory(model, tower, "auto")
    env = {
        "CLIP_MODEL": model,
        "CLIP_DEVICE": "auto",
        "CLIP_PRECISION": "auto",
        "MULTILINGUAL_MODEL": str(tower),
        "DATA_DIR": str(data_dir),
        "IMAGES_DIR": str(images_dir),
        "GUNICORN_ACCESS_LOG": "",
        "LOG_LEVEL": "WARNING",
    }
    started = time.perf_counter()
    server = start_gunicorn(env, workdir / "gunicorn-multilingual.log", timeout=ready_timeout)
    try:
        url = server.url
        deadline = time.monotonic() + ready_timeout
        while True:
            state = requests.get(f"{url}/api/ready", timeout=30).json()["towers"]["multilingual"]
            if state["state"] != "loading" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if state["state"] != "ready":
            raise RuntimeError(f"the multilingual tower is {state}:\n{server.log()[-3000:]}")
        result["tower_ready_s"] = round(time.perf_counter() - started, 1)
        (worker,) = children(server.process.pid)
        session = requests.Session()

        def search(q: str, own: requests.Session = session) -> tuple[float, str]:
            begun = time.perf_counter()
            response = own.get(f"{url}/api/search", params={"q": q, "k": 12}, timeout=300)
            elapsed = time.perf_counter() - begun
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
            return elapsed, str(response.json()["text_encoder"])

        for i in range(3):  # warm both towers
            search(query(i, "w", True))
            search(query(i, "w", False))
        russian: list[float] = []
        english: list[float] = []
        towers_seen: set[tuple[bool, str]] = set()
        with CpuWindow((worker,)) as window:
            for i in range(samples):
                order = (True, False) if i % 2 else (False, True)  # who goes first alternates
                for is_russian in order:
                    wait_for_quiet((worker,), max_wait=5)
                    elapsed, encoder = search(query(i, "s", is_russian))
                    towers_seen.add((is_russian, encoder))
                    (russian if is_russian else english).append(elapsed)
        if towers_seen != {(True, "multilingual"), (False, "clip")}:
            raise RuntimeError(f"queries went to the wrong towers: {sorted(towers_seen)}")
        result["one_client"] = {
            "russian_p50_ms": round(median(russian) * 1000, 1),
            "russian_p95_ms": round(percentile(russian, 95) * 1000, 1),
            "english_p50_ms": round(median(english) * 1000, 1),
            "english_p95_ms": round(percentile(english, 95) * 1000, 1),
            "russian_over_english_p50": round(ratio(median(russian), median(english)), 3),
            "samples": samples,
            "other_cores": round(window.other_cores, 2),
        }
        result["concurrent"] = _mixed_load(url, worker, concurrent_clients, requests_per_client)
        result["server_memory_mib"] = memory_status(worker)
    finally:
        server.stop()
    return result


def _mixed_load(url: str, worker: int, clients: int, per_client: int) -> dict[str, Any]:
    """`clients` threads, each with its own connection, alternating Russian and English queries."""

    def send(own: Any, n: int, j: int) -> Any:
        q = query(n * 1000 + j, "c", (n + j) % 2 == 0)
        return own.get(f"{url}/api/search", params={"q": q, "k": 12}, timeout=600)

    return concurrent_load(worker, clients, per_client, send)


# The targets of issue 14.
MAX_RATIO = 2.0
MAX_ADDED_MIB = 1.3e9 / 2**20  # 1.3 GB


def checks(section: dict[str, Any]) -> list[Any]:
    """The report's rows for this section (targets only for the real-size tower)."""
    from bench.report import Check

    real = bool(section["real_size"])
    one, memory, load = section["one_client"], section["memory"], section["concurrent"]
    ratio_value = one["russian_over_english_p50"]
    added = memory["added_rss_anon_mib"]
    served = section.get("memory_served") or memory
    served_precision = served["precision"]
    rows = [
        Check("multilingual", "tower", f"{section['tower']}; served in {served_precision}", "", None),
        Check(
            "multilingual",
            "text search over HTTP p50 ms: Russian (multilingual) / English (CLIP); ratio",
            f"{one['russian_p50_ms']:.1f} / {one['english_p50_ms']:.1f}; {ratio_value:.2f}",
            f"<= {MAX_RATIO}" if real else "(stand-in)",
            ratio_value <= MAX_RATIO if real else None,
        ),
        Check(
            "multilingual",
            f"resident memory the tower adds ({memory['precision']}), MiB (its weights)",
            f"{added:.0f} ({memory['param_mib']:.0f}, {'/'.join(memory['dtypes'])})",
            f"<= {MAX_ADDED_MIB:.0f}" if real else "(stand-in)",
            added <= MAX_ADDED_MIB if real else None,
        ),
        Check(
            "multilingual",
            f"{load['clients']} clients mixing Russian and English: errors; rps / cores allow (efficiency)",
            f"{load['errors']}; {load['throughput_rps']:.2f} / {load['cores_allow_rps']:.2f} "
            f"({load['efficiency']:.2f})",
            "0 errors",
            load["errors"] == 0,
        ),
    ]
    if served is not memory and served_precision != memory["precision"]:
        rows.insert(
            3,
            Check(
                "multilingual",
                f"resident memory the tower adds as served ({served_precision}), MiB (its weights)",
                f"{served['added_rss_anon_mib']:.0f} ({served['param_mib']:.0f}, {'/'.join(served['dtypes'])})",
                "",
                None,
            ),
        )
    return rows
