"""The FAISS cross-check (eval/crosscheck.py): recall 1.0 where the answer is known, below 1 for a store
that answers wrongly, an HNSW-indexed copy that really uses HNSW, and the command that saves the report."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.settings import Settings
from core.store.base import IMAGES, PROMPTS, Hit, PointRecord, VectorStore
from core.store.embedded import EmbeddedStore
from eval.crosscheck import (
    format_report,
    hnsw_recall,
    load_vectors,
    run_crosscheck,
    sample_queries,
    save_report,
)
from eval.recall import recall_at_k

DIM = 64
META = {"model": "crosscheck-test", "dim": DIM, "image_size": 32}


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """n random unit float32 vectors."""
    raw = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def fill(store: VectorStore, n: int, seed: int = 0, prompts: int = 0) -> tuple[list[str], np.ndarray]:
    """n points in `images` (and `prompts` class vectors if asked); their ids and vectors."""
    vectors = unit_vectors(n, seed=seed)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_OID, f"cc-{seed}-{i}")) for i in range(n)]
    store.ensure_collection(IMAGES, META)
    store.upsert(
        IMAGES,
        [PointRecord(id=i, vector=v, payload={"label": "x"}) for i, v in zip(ids, vectors, strict=True)],
    )
    if prompts:
        store.ensure_collection(PROMPTS, META)
        store.upsert(
            PROMPTS,
            [
                PointRecord(
                    id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"class-{j}")), vector=v, payload={"label": f"c{j}"}
                )
                for j, v in enumerate(unit_vectors(prompts, seed=seed + 1))
            ],
        )
    return ids, vectors


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    """An embedded store in a temporary folder."""
    opened = EmbeddedStore(tmp_path / "qdrant")
    yield opened
    opened.close()


class DroppingStore:
    """A store that loses the best answer of every query (and answers the rest honestly)."""

    def __init__(self, inner: VectorStore) -> None:
        self.inner = inner

    def query(self, name: str, vector: np.ndarray, limit: int, **kwargs: Any) -> list[Hit]:
        """The true top limit+1, less the first."""
        return self.inner.query(name, vector, limit + 1, **kwargs)[1:]


class ShuffledStore:
    """A store that answers every query with the neighbours of another vector."""

    def __init__(self, inner: VectorStore) -> None:
        self.inner = inner

    def query(self, name: str, vector: np.ndarray, limit: int, **kwargs: Any) -> list[Hit]:
        """The nearest points to the opposite vector."""
        return self.inner.query(name, -np.asarray(vector), limit, **kwargs)


def test_load_vectors_round_trips(store: EmbeddedStore) -> None:
    ids, vectors = fill(store, 50)
    got_ids, got = load_vectors(store, IMAGES)
    order = [got_ids.index(i) for i in ids]
    np.testing.assert_allclose(got[order], vectors, atol=1e-6)
    missing_ids, missing = load_vectors(store, "missing")
    assert missing_ids == [] and missing.size == 0


def test_recall_is_one_where_the_answer_is_known(store: EmbeddedStore) -> None:
    ids, vectors = fill(store, 80)
    queries = np.concatenate([vectors[:20], unit_vectors(10, seed=5)])
    assert recall_at_k(store, IMAGES, ids, vectors, queries, k=10) == 1.0
    # k above the collection size is capped.
    assert recall_at_k(store, IMAGES, ids, vectors, queries[:3], k=500) == 1.0


def test_recall_drops_for_a_wrong_store(store: EmbeddedStore) -> None:
    ids, vectors = fill(store, 80)
    queries = unit_vectors(12, seed=6)
    dropping = recall_at_k(DroppingStore(store), IMAGES, ids, vectors, queries, k=10)  # type: ignore[arg-type]
    assert dropping == pytest.approx(0.9)
    shuffled = recall_at_k(ShuffledStore(store), IMAGES, ids, vectors, queries, k=10)  # type: ignore[arg-type]
    assert shuffled < 0.2


def test_sample_queries_adds_the_class_vectors(store: EmbeddedStore) -> None:
    _, vectors = fill(store, 40, prompts=8)
    queries = sample_queries(store, vectors, samples=10)
    assert queries.shape == (18, DIM) and queries.dtype == np.float32
    assert sample_queries(store, vectors, samples=500).shape == (48, DIM)


def test_hnsw_copy_really_builds_hnsw() -> None:
    vectors = unit_vectors(320, seed=3)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_OID, f"h-{i}")) for i in range(len(vectors))]
    result = hnsw_recall(ids, vectors, vectors[:30], k=10, hnsw_ef=128)
    assert result["indexed_vectors"] > 0
    assert result["recall_at_k"] >= 0.9
    assert result["hnsw_ef"] == 128 and result["build_seconds"] >= 0


def test_run_crosscheck_report(store: EmbeddedStore, make_settings: Any) -> None:
    settings: Settings = make_settings()
    empty = run_crosscheck(store, settings)
    assert empty["recall_at_k"] is None and empty["queries"] == 0
    assert "empty" in format_report(empty)

    fill(store, 320, prompts=8)
    report = run_crosscheck(store, settings, samples=40, k=12)
    assert report["points"] == 320 and report["k"] == 12
    assert report["queries"] == 48
    assert report["recall_at_k"] == 1.0
    assert report["indexed_vectors"] == 0
    assert report["search"].startswith("exhaustive")  # 320 x 64 floats is far under the 10 MB threshold
    assert report["hnsw_copy"]["indexed_vectors"] > 0
    assert report["hnsw_copy"]["recall_at_k"] >= 0.9
    # By kind, as the service searches: the 40 stored vectors at HNSW_EF, the 8 prompts (texts) wider.
    assert report["recall_photo_queries"] == report["recall_text_queries"] == 1.0
    copy = report["hnsw_copy"]
    assert (copy["hnsw_ef"], copy["hnsw_ef_text"]) == (settings.hnsw_ef, settings.hnsw_ef_text)
    assert copy["recall_photo_queries"] is not None and copy["recall_text_queries"] is not None
    text = format_report(report)
    assert "recall@12 = 1.0000" in text and "HNSW-indexed copy" in text
    json.dumps(report)  # the report is plain JSON


def test_live_collection_past_the_threshold_uses_hnsw(tmp_path: Path, make_settings: Any) -> None:
    store = EmbeddedStore(tmp_path / "qdrant", indexing_threshold_kb=1)
    try:
        fill(store, 320)
        store.optimize(IMAGES)
        report = run_crosscheck(store, make_settings(), samples=30, k=10)
        assert report["indexed_vectors"] > 0
        assert report["recall_at_k"] >= 0.9
    finally:
        store.close()


def test_save_report(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "crosscheck.json"
    save_report({"recall_at_k": 1.0, "k": 12}, target)
    assert json.loads(target.read_text(encoding="utf-8")) == {"recall_at_k": 1.0, "k": 12}
    assert [p.name for p in target.parent.iterdir()] == ["crosscheck.json"]


@pytest.mark.slow
def test_the_command_writes_the_report(
    settings: Settings, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    store = EmbeddedStore(settings.shard_dir)
    fill(store, 60, prompts=8)

    def crosscheck() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "eval.crosscheck", "--samples", "20", "-k", "5"],
            env=subprocess_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    locked = crosscheck()  # the store is still open here: a clear error, no report
    assert locked.returncode == 1
    assert "open in another process" in locked.stderr
    assert not settings.crosscheck_report.exists()

    store.close()
    result = crosscheck()
    assert result.returncode == 0, result.stderr
    assert "cross-check vs FAISS flat: recall@5 = 1.0000" in result.stdout
    report = json.loads(settings.crosscheck_report.read_text(encoding="utf-8"))
    assert settings.crosscheck_report == settings.data_dir / "crosscheck.json"
    assert report["points"] == 60 and report["queries"] == 28 and report["recall_at_k"] == 1.0
    assert report["hnsw_copy"]["indexed_vectors"] > 0
