"""Cross-check Qdrant's answers against FAISS: an exact flat inner-product index over the same vectors.

Recall@k of Qdrant's answers against FAISS's exact ones, over sample queries (stored image vectors and the
class prompt vectors). Qdrant searches exhaustively until a segment passes its indexing threshold, so the
report carries `indexed_vectors` beside the recall, and a second check copies the vectors into a
temporary embedded shard configured to build HNSW, so the approximate index is measured too.
Run it with `make crosscheck` (or `python -m eval.crosscheck`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.cells import Cells
from core.settings import Settings, load_settings
from core.store import (
    IMAGES,
    PROMPTS,
    PointRecord,
    StoreError,
    VectorStore,
    open_scratch_store,
    open_store,
)
from eval.recall import recall_per_query

log = logging.getLogger(__name__)


def load_vectors(store: VectorStore, name: str) -> tuple[list[str], np.ndarray]:
    """Every id and vector of a collection."""
    ids, rows = [], []
    for point in store.scroll(name, with_vectors=True, batch=1024):
        if point.vector is not None:
            ids.append(point.id)
            rows.append(point.vector)
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    return ids, np.stack(rows).astype(np.float32)


def sample_queries(store: VectorStore, vectors: np.ndarray, samples: int, seed: int = 0) -> np.ndarray:
    """Up to `samples` stored vectors plus every class prompt vector."""
    rng = np.random.default_rng(seed)
    chosen = vectors[rng.choice(len(vectors), size=min(samples, len(vectors)), replace=False)]
    _, prompt_vectors = load_vectors(store, PROMPTS)
    if prompt_vectors.size and prompt_vectors.shape[1] == vectors.shape[1]:
        chosen = np.concatenate([chosen, prompt_vectors])
    return chosen.astype(np.float32)


def recall_by_kind(
    store: VectorStore,
    ids: list[str],
    vectors: np.ndarray,
    queries: np.ndarray,
    photos: int,
    k: int,
    text_ef: int,
    text_cells_probe: int = 0,
) -> dict[str, Any]:
    """Recall@k as the service searches: the first `photos` queries (stored vectors) at the store's
    HNSW_EF, the rest (class prompts: texts) at `text_ef` (HNSW_EF_TEXT) and, where the library has
    cells, merged with their `text_cells_probe` nearest cells (core/cells.py); overall and by kind."""
    # One exact search for both kinds: FAISS copies every stored vector into its index.
    beams: list[int | None] = [None] * photos
    beams += [text_ef] * (len(queries) - photos)
    trained = Cells.load(store) if text_cells_probe else None
    cells: list[list[int] | None] = [None] * len(queries)
    if trained is not None:
        cells[photos:] = [trained.probe(q, text_cells_probe) for q in queries[photos:]]
    each = recall_per_query(store, IMAGES, ids, vectors, queries, k, beams, cells)
    photo = float(np.mean(each[:photos])) if photos else None
    text = float(np.mean(each[photos:])) if len(each) > photos else None
    overall = float(np.mean(each)) if each else 0.0
    return {
        "recall_at_k": round(overall, 4),
        "recall_photo_queries": None if photo is None else round(photo, 4),
        "recall_text_queries": None if text is None else round(text, 4),
        "text_cells_probed": text_cells_probe if trained is not None else 0,
    }


def hnsw_recall(
    ids: list[str],
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    hnsw_ef: int,
    photos: int | None = None,
    hnsw_ef_text: int | None = None,
) -> dict[str, Any]:
    """Copy the vectors into a temporary shard that builds HNSW at any size, and measure its recall (the
    first `photos` queries at `hnsw_ef`, the rest at `hnsw_ef_text`; all photos by default)."""
    with tempfile.TemporaryDirectory(prefix="wonders-crosscheck-") as tmp:
        scratch = open_scratch_store(Path(tmp), hnsw_ef)
        scratch.ensure_collection(IMAGES, {"dim": int(vectors.shape[1]), "model": "crosscheck"})
        for start in range(0, len(ids), 1024):
            scratch.upsert(
                IMAGES,
                [
                    PointRecord(id=i, payload={}, vector=v)
                    for i, v in zip(ids[start : start + 1024], vectors[start : start + 1024], strict=True)
                ],
            )
        started = time.perf_counter()
        scratch.optimize(IMAGES)
        build_s = time.perf_counter() - started
        stats = scratch.stats(IMAGES)
        photos = len(queries) if photos is None else photos
        text_ef = hnsw_ef_text or hnsw_ef
        recalls = recall_by_kind(scratch, ids, vectors, queries, photos, k, text_ef)
        scratch.close()
    return {
        **recalls,
        "indexed_vectors": stats.indexed_vectors,
        "hnsw_ef": hnsw_ef,
        "hnsw_ef_text": text_ef,
        "build_seconds": round(build_s, 3),
    }


def run_crosscheck(store: VectorStore, settings: Settings, samples: int = 100, k: int = 12) -> dict[str, Any]:
    """Measure Qdrant's recall@k against FAISS on the live collection and on an HNSW-indexed copy."""
    ids, vectors = load_vectors(store, IMAGES)
    report: dict[str, Any] = {
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "k": k,
        "points": len(ids),
    }
    if not ids:
        report.update({"recall_at_k": None, "queries": 0, "note": "the collection is empty"})
        return report
    queries = sample_queries(store, vectors, samples)
    photos = min(samples, len(vectors))  # sample_queries puts the stored vectors first, then the prompts
    stats = store.stats(IMAGES)
    report.update(
        {
            "queries": len(queries),
            **recall_by_kind(
                store, ids, vectors, queries, photos, k, settings.hnsw_ef_text, settings.text_cells_probe
            ),
            "indexed_vectors": stats.indexed_vectors,
            "search": "hnsw"
            if stats.indexed_vectors >= len(ids)
            else "exhaustive, below the indexing threshold",
            "hnsw_copy": hnsw_recall(
                ids, vectors, queries, k, settings.hnsw_ef, photos, settings.hnsw_ef_text
            ),
        }
    )
    return report


def save_report(report: dict[str, Any], path: Path) -> None:
    """Write the report atomically where the API reads it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def format_report(report: dict[str, Any]) -> str:
    """One readable paragraph."""
    if not report.get("queries"):
        return "cross-check: the collection is empty, nothing to compare"
    copy = report["hnsw_copy"]
    return (
        f"cross-check vs FAISS flat: recall@{report['k']} = {report['recall_at_k']:.4f} over "
        f"{report['queries']} queries, {report['points']} points, {report['indexed_vectors']} in HNSW "
        f"[{report['search']}]; HNSW-indexed copy: recall@{report['k']} = {copy['recall_at_k']:.4f} "
        f"[{copy['indexed_vectors']} indexed, ef={copy['hnsw_ef']}, text queries' ef="
        f"{copy.get('hnsw_ef_text', copy['hnsw_ef'])}; photo / text queries "
        f"{_share(copy.get('recall_photo_queries'))} / {_share(copy.get('recall_text_queries'))}]"
    )


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    """`python -m eval.crosscheck`: rerun the cross-check and save its report."""
    parser = argparse.ArgumentParser(prog="python -m eval.crosscheck", description=__doc__)
    parser.add_argument("--samples", type=int, default=100, help="stored vectors used as queries")
    parser.add_argument("-k", type=int, default=12, help="neighbours compared per query")
    args = parser.parse_args(argv)
    settings = load_settings()
    store = open_store(settings)
    try:
        report = run_crosscheck(store, settings, samples=args.samples, k=args.k)
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        store.close()
    save_report(report, settings.crosscheck_report)
    print(format_report(report))
    print(f"report saved to {settings.crosscheck_report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
