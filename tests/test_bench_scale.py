"""`make bench-scale` runs end to end at a small size and reports what it promises (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.scale import LibraryModel, make_queries

REPO = Path(__file__).resolve().parent.parent


def test_library_model_is_deterministic_clustered_and_heavy_tailed() -> None:
    model = LibraryModel(4000)
    first = np.concatenate([v for v, _ in model.chunks(4000, stream=0)])
    again, places = next(LibraryModel(4000).chunks(4000, stream=0))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    sizes = np.sort(np.bincount(places))[::-1]
    assert sizes[0] > 10 * np.median(sizes[sizes > 0]), "a few places hold many photos"
    same = first[places == places[0]]
    other = first[places != places[0]]
    assert float(np.mean(same[1:] @ same[0])) > float(np.mean(other @ same[0])) + 0.2
    queries = make_queries(model, 10)
    text_best = (queries[5:] @ first.T).max(axis=1)
    photo_best = (queries[:5] @ first.T).max(axis=1)
    assert float(text_best.mean()) < float(photo_best.mean()) - 0.3  # the modality gap


@pytest.mark.slow
def test_scale_bench_small_run_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "scale"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QDRANT_", "CLIP_", "HNSW_", "INDEXING_", "TEXT_CELLS", "CELLS_"))
    }
    env["CELLS_MIN_PHOTOS"] = "4000"  # the product trains cells past 50,000 photos; this library is 4,000
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scale",
            "--size",
            "4000",
            "--queries",
            "20",
            "--rounds",
            "1",
            "--out",
            str(out),
        ],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["size"] == 4000 and set(report["layouts"]) == {"int8", "float32"}
    for layout in report["layouts"].values():
        assert layout["points"] == layout["indexed_vectors"] == 4000, "every vector in HNSW"
        assert 0.9 <= layout["recall_at_12"] <= 1.0
        assert layout["one_client"]["p50_ms"] > 0 and layout["eight_clients"]["queries_per_s"] > 0
        assert layout["store_rss_mib"] > 0
        assert (layout["hnsw_ef"], layout["hnsw_ef_text"]) == (256, 512)  # as served: a beam per kind
        assert (layout["cells"], layout["text_cells_probe"]) == (16, 2)  # texts probe their cells too
        assert layout["cells_train_s"] > 0
        assert layout["one_client"]["p50_ms_text_queries"] > 0
        assert [row["hnsw_ef"] for row in layout["ef_sweep"]] == [256, 512, 128]
    assert "int8_copy" in report["layouts"]["int8"]["disk_mib"]
    assert "int8_copy" not in report["layouts"]["float32"]["disk_mib"]
    assert "int8_over_float32_vectors_and_index" in report["targets"]
    assert "| int8 |" in out.with_suffix(".md").read_text()
