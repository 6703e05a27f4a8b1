"""The bench runs end to end (tiny model, quick mode) and writes its report; no timing is asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.report import checks, markdown
from bench.store import clip_like_vectors
from bench.util import percentile

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_bench_on_the_tiny_model_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "CLIP_"))}
    env.update({"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)})
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--model",
            "tiny",
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
            "--store-vectors",
            "2000",
            "--quiet-wait",
            "0",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    report = json.loads((out / "latest.json").read_text())
    table = (out / "latest.md").read_text()

    assert report["mode"] == "quick" and report["model"] == "tiny"
    assert report["machine"]["cores"] >= 1 and report["machine"]["versions"]["torch"]
    for section in ("ingest", "query", "store"):
        assert "error" not in report[section], report[section].get("trace")

    ingest = report["ingest"]
    assert ingest["model_only_ips"] > 0 and ingest["ingest_ips"] > 0 and ingest["prototype_ips"] > 0
    assert ingest["ingest_vs_model_only"] > 0 and ingest["ingest_vs_prototype"] > 0
    assert ingest["fidelity_default_vs_fp32"]["cosine_image_min"] > 0.99
    assert ingest["fidelity_int8_vs_fp32"]["images"] == ingest["photos"]

    query = report["query"]
    for kind in ("text_search", "text_search_cached", "image_search", "classify", "bare_text_encode"):
        assert query["one_client"][kind]["p50_ms"] > 0
    for load in query["concurrent"].values():
        assert load["errors"] == 0, load["error_samples"]
        assert load["requests"] > 0 and load["server_cpu_s_per_request"] > 0
    assert query["memory_after_queries_mib"]["VmHWM"] > 0

    store = report["store"]
    assert store["points"] == 2000 and store["indexed_vectors"] == 2000
    assert 0.0 <= store["tuned"]["recall_at_12"] <= 1.0

    assert "| section | measure | value | target | verdict |" in table
    assert "ingest / prototype" in table and "recall@12" in table
    assert len(report["checks"]) > 10


def test_clip_like_vectors_are_unit_and_clustered() -> None:
    vectors, cluster = clip_like_vectors(3000, dim=64, centres=20, subspace=8)
    assert vectors.shape == (3000, 64) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    same = vectors[cluster == cluster[0]]
    other = vectors[cluster != cluster[0]]
    assert float((same @ vectors[0]).mean()) > float((other @ vectors[0]).mean())


def test_percentile_and_report_table() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0], 100) == 2.0
    report = {
        "mode": "quick",
        "model": "tiny",
        "started_at": "now",
        "took_s": 1.0,
        "machine": {
            "cpu_model": "cpu",
            "cores": 2,
            "memory_gib": 1,
            "cpu_flags": [],
            "cuda": "no CUDA",
            "versions": {"torch": "x"},
            "torch_threads": 2,
            "loadavg_at_start": ["0"],
        },
        "store": {"error": "boom"},
    }
    rows = checks(report)
    assert rows[-1].verdict == "MISSED"
    assert "section failed" in markdown(report, rows)


def test_concurrent_text_callers_share_forward_passes(encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The encoder gathers the texts of callers waiting for the model into one forward (bench: 8 clients)."""
    import threading
    import time

    texts = [f"landmark number {i}" for i in range(6)]
    alone = {t: encoder.encode_texts([t])[0] for t in texts}
    original = encoder._encode_texts_now
    calls: list[int] = []

    def slow(batch: list[str]) -> np.ndarray:
        calls.append(len(batch))
        time.sleep(0.2)  # long enough for every other caller to queue up behind this pass
        return original(batch)

    monkeypatch.setattr(encoder, "_encode_texts_now", slow)
    got: dict[str, np.ndarray] = {}
    threads = [
        threading.Thread(target=lambda t=t: got.__setitem__(t, encoder.encode_texts([t])[0])) for t in texts
    ]
    for thread in threads:
        thread.start()
        time.sleep(0.01)
    for thread in threads:
        thread.join()
    assert sum(calls) == len(texts) and len(calls) < len(texts)
    for text in texts:
        np.testing.assert_allclose(got[text], alone[text], atol=1e-5)


def test_a_failing_batch_fails_only_its_bad_caller(encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from core.encoder import _TextRequest

    original = encoder._encode_texts_now

    def picky(batch: list[str]) -> np.ndarray:
        if "bad" in batch:
            raise ValueError("bad text")
        return original(batch)

    monkeypatch.setattr(encoder, "_encode_texts_now", picky)
    good, bad = _TextRequest(["good"]), _TextRequest(["bad"])
    encoder._encode_text_batch([good, bad])
    assert good.vectors is not None and good.error is None
    assert isinstance(bad.error, ValueError) and bad.vectors is None


def test_allocator_keeps_freed_memory_on_linux() -> None:
    import sys

    from core.encoder import keep_freed_memory

    assert keep_freed_memory() is sys.platform.startswith("linux")
