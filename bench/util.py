"""Small measuring tools: medians and percentiles, CPU time of this and other processes, memory, machine."""

from __future__ import annotations

import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests


def median(values: Sequence[float]) -> float:
    """The median (0.0 for no values)."""
    return float(statistics.median(values)) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between the closest ranks."""
    if not values:
        return 0.0
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or 0.0 when the denominator is 0."""
    return float(numerator / denominator) if denominator else 0.0


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, steal): CPU seconds the machine's processes ran (user, nice, system, irq, softirq), and
    seconds a hypervisor gave this machine's CPUs to someone else while they had work (steal)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]] + [0] * 8
    busy = values[0] + values[1] + values[2] + values[5] + values[6]
    return busy / _TICKS, values[7] / _TICKS


def memory_status(pid: int) -> dict[str, float]:
    """VmHWM (peak), VmRSS, RssAnon and RssFile of a process, in MiB, from /proc/<pid>/status."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def children(pid: int) -> list[int]:
    """Direct child processes of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class CpuWindow:
    """CPU used during a stretch of wall time: by the watched processes and by the rest of the machine.

    `other_cores` is what everything else on the machine (other people's tests, ...) used on average: a
    measurement taken while it is high is disturbed, so the report carries it beside every section."""

    pids: tuple[int, ...]
    wall: float = 0.0
    own: float = 0.0
    machine: float = 0.0
    steal: float = 0.0

    def __enter__(self) -> CpuWindow:
        self._t = time.perf_counter()
        self._own = sum(process_cpu_seconds(p) for p in self.pids)
        self._machine, self._steal = machine_busy_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t
        self.own = sum(process_cpu_seconds(p) for p in self.pids) - self._own
        machine, steal = machine_busy_seconds()
        self.machine, self.steal = machine - self._machine, steal - self._steal

    @property
    def own_cores(self) -> float:
        """Average cores the watched processes kept busy."""
        return ratio(self.own, self.wall)

    @property
    def other_cores(self) -> float:
        """Average cores the rest of the machine kept busy."""
        return max(0.0, ratio(self.machine - self.own, self.wall))

    @property
    def steal_cores(self) -> float:
        """Average cores the hypervisor took away (a virtual machine on a shared host)."""
        return ratio(self.steal, self.wall)


def machine_info() -> dict[str, Any]:
    """CPU model, cores, bf16 support, memory, library versions: the context every number needs."""
    import torch

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), ""
    )
    flags = next((ln.split(":", 1)[1].split() for ln in cpuinfo.splitlines() if ln.startswith("flags")), [])
    mem_kb = 0
    if Path("/proc/meminfo").exists():
        mem_kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("transformers", "sentence_transformers", "PIL", "numpy", "faiss"):
        try:
            module = __import__(name)
            versions[name] = str(getattr(module, "__version__", "?"))
        except ImportError:
            versions[name] = "missing"
    try:
        from importlib.metadata import version

        versions["qdrant-edge-py"] = version("qdrant-edge-py")
    except Exception:
        versions["qdrant-edge-py"] = "?"
    return {
        "cpu_model": model or platform.processor() or "unknown",
        "cores": cores(),
        "cpu_flags": sorted(
            {f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni")}
        ),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA",
        "versions": versions,
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3]
        if Path("/proc/loadavg").exists()
        else [],
    }


# The longest wait_for_quiet may wait, whatever a caller asks (`--quiet-wait`; 0 turns it off).
QUIET_MAX_WAIT = [15.0]


def wait_for_quiet(
    pids: tuple[int, ...] = (), threshold: float = 0.3, window: float = 0.4, max_wait: float = 15.0
) -> float:
    """Wait until the rest of the machine uses under `threshold` cores (over `window` s), at most `max_wait` s.

    On a shared machine other people's processes come and go; starting each sample in a quiet moment
    keeps them out of most measurements. Returns the seconds waited."""
    max_wait = min(max_wait, QUIET_MAX_WAIT[0])
    if max_wait <= 0:
        return 0.0
    started = time.perf_counter()
    watched = (os.getpid(), *pids)
    while True:
        with CpuWindow(watched) as sample:
            time.sleep(window)
        waited = time.perf_counter() - started
        if sample.other_cores < threshold or waited >= max_wait:
            return waited


def concurrent_load(
    worker: int,
    clients: int,
    per_client: int,
    send: Callable[[requests.Session, int, int], requests.Response],
) -> dict[str, Any]:
    """`clients` threads, each with its own connection, each sending `per_client` requests
    (`send(session, client, j)`), against the server process `worker`: errors, throughput beside what
    the cores allow (cores / the server's CPU-seconds per request), latencies, and the CPU of the
    clients themselves (this process), which is left out of `other_cores`."""
    import requests

    errors: list[str] = []
    latencies: list[float] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        own = requests.Session()
        for j in range(per_client):
            begun = time.perf_counter()
            try:
                response = send(own, n, j)
                ok, detail = response.status_code == 200, f"{response.status_code}: {response.text[:200]}"
            except requests.RequestException as err:
                ok, detail = False, f"{type(err).__name__}: {err}"
            with lock:
                latencies.append(time.perf_counter() - begun)
                if not ok:
                    errors.append(detail)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    wait_for_quiet((worker,))
    client_cpu = os.times()
    with CpuWindow((worker,)) as window:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    client_cpu_s = sum(os.times()[:2]) - sum(client_cpu[:2])
    total = clients * per_client
    throughput = total / window.wall
    cpu_per_request = window.own / total
    allowed = cores() / cpu_per_request if cpu_per_request else 0.0
    return {
        "clients": clients,
        "requests": total,
        "errors": len(errors),
        "error_samples": errors[:3],
        "throughput_rps": round(throughput, 3),
        "server_cpu_s_per_request": round(cpu_per_request, 4),
        "cores_allow_rps": round(allowed, 3),
        "efficiency": round(ratio(throughput, allowed), 3),
        "server_cores_busy": round(window.own_cores, 2),
        "client_cores": round(client_cpu_s / window.wall, 2),
        "other_cores": round(max(0.0, window.other_cores - client_cpu_s / window.wall), 2),
        "latency_p50_ms": round(median(latencies) * 1000, 1),
        "latency_p95_ms": round(percentile(latencies, 95) * 1000, 1),
    }
