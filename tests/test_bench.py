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
            "--only",
            "ingest,query,store,refine",  # the multilingual section: tests/test_bench_multilingual.py
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
    for section in ("ingest", "query", "store", "refine"):
        assert "error" not in report[section], report[section].get("trace")

    ingest = report["ingest"]
    assert ingest["model_only_ips"] > 0 and ingest["ingest_ips"] > 0 and ingest["prototype_ips"] > 0
    assert ingest["ingest_vs_model_only"] > 0 and ingest["ingest_vs_prototype"] > 0
    assert ingest["fidelity_default_vs_fp32"]["cosine_image_min"] > 0.99
    if not __import__("torch").cuda.is_available():  # the GPU ingest row says it was not measured
        assert report["gpu_ingest"]["measured"] is False and "no CUDA" in report["gpu_ingest"]["why"]
    assert ingest["fidelity_int8_vs_fp32"]["images"] == ingest["photos"]
    plain = ingest["rewrites_vs_plain_fp32"]  # the product's rewrites of CLIP change no answer
    assert plain["images"] > 0 and plain["texts"] > 0
    assert plain["cosine_image_min"] >= 0.99999 and plain["cosine_text_min"] >= 0.99999
    assert plain["max_abs_diff"] <= 1e-4

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

    refine = report["refine"]
    assert refine["vectors"] == 2000 and refine["queries"]["examples_3_2_p50_ms"] > 0
    assert refine["queries"]["examples_anywhere_p50_ms"] > 0
    assert refine["duplicates"]["planted_grouped"] == refine["duplicates"]["planted"] == 20
    assert refine["per_new_photo"]["check_p50_ms"] > 0

    assert "| section | measure | value | target | verdict |" in table
    assert "ingest / prototype" in table and "recall@12" in table and "exact rewrites" in table
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


def test_bench_tokenizer_is_clips_own_bpe() -> None:
    """The ViT-L/14 bench model tokenizes like openai/clip-vit-large-patch14 (ids as published), so its
    text queries cost what they would with the real model."""
    from bench.model import VIT_L14_VOCAB, clip_tokenizer

    tokenizer = clip_tokenizer()
    assert len(tokenizer) == VIT_L14_VOCAB
    assert tokenizer("a photo of a dog")["input_ids"] == [49406, 320, 1125, 539, 320, 1929, 49407]
    long = tokenizer("word " * 200, truncation=True)["input_ids"]
    assert len(long) == 77 and long[-1] == 49407
