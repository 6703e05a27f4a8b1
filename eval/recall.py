"""Recall of Qdrant's answers against exact ones: FAISS flat inner product over the same vectors.

One implementation for the cross-check after ingest (`eval/crosscheck.py`), `make bench` and
`make bench-scale`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import faiss
import numpy as np

from core.store import VectorStore


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row i: the indices of the k vectors with the largest inner product with query i, best first."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(vectors)))
    return found


def truth_sets(ids: Sequence[str], exact: np.ndarray) -> list[set[str]]:
    """The exact answers as sets of ids (FAISS pads a short answer with -1)."""
    return [{ids[i] for i in row if i >= 0} for row in exact]


def overlap(truth: set[str], got: Iterable[str]) -> float:
    """The fraction of the exact answer that an approximate answer also holds."""
    return len(truth & set(got)) / max(1, len(truth))


def recall_per_query(
    store: VectorStore,
    name: str,
    ids: Sequence[str],
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    beams: Sequence[int | None] | None = None,
    cells: Sequence[Sequence[int] | None] | None = None,
) -> list[float]:
    """For each query, the fraction of FAISS's exact top-k that the store also returns in its top-k.

    `beams`: each query's HNSW beam width (None: the store's HNSW_EF); `cells`: the cells each query
    also searches (None: none), as the service gives them (search/cells.py)."""
    from search.cells import nearest  # the search layer's own merge of the walk and the cells

    k = min(k, len(ids))
    truths = truth_sets(ids, exact_top_k(vectors, queries, k))
    per_query = beams if beams is not None else [None] * len(queries)
    probed = cells if cells is not None else [None] * len(queries)
    return [
        overlap(truth, (h.id for h in nearest(store, query, k, hnsw_ef=beam, cells=c, collection=name)))
        for query, truth, beam, c in zip(queries, truths, per_query, probed, strict=True)
    ]


def recall_at_k(
    store: VectorStore,
    name: str,
    ids: Sequence[str],
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    beams: Sequence[int | None] | None = None,
) -> float:
    """Mean fraction of FAISS's exact top-k that the store also returns in its top-k (see
    `recall_per_query`)."""
    return sum(recall_per_query(store, name, ids, vectors, queries, k, beams)) / max(1, len(queries))
