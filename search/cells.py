"""Text queries searched two ways at once: the HNSW walk, and a search of the cells nearest to the text.

The answer is the best of both by score (both are the same cosine: rescored by the original vectors with
QUANTIZATION_RESCORE), so the cells can only add photos the walk missed; core/cells.py says why a walk
misses them and how cells are made.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from core.cells import Cells
from core.store import CELLS, IMAGES, CollectionMissing, Hit, VectorStore


class StoredCells:
    """The service's copy of the stored centroids, re-read when the stored ones change (ingest retrains
    them in the background, another machine may)."""

    # The stored cells' meta is read at most this often (a server round trip per check).
    CHECK_S = 30.0

    def __init__(self) -> None:
        self._cells: Cells | None = None
        self._meta: dict[str, object] | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def current(self, store: VectorStore) -> Cells | None:
        """The cells to route text queries by, or None when there are none (yet) for this library."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at > self.CHECK_S:
                self._checked_at = now
                meta = store.collection_meta(CELLS)
                if meta != self._meta:
                    try:
                        self._cells = Cells.load(store) if meta is not None else None
                    except CollectionMissing:  # dropped while read: a training began
                        self._cells = None
                    # Remembered only once read whole: centroids still being written are read again.
                    self._meta = meta if self._cells is not None or meta is None else None
            return self._cells

    def forget(self) -> None:
        """Read the stored cells again on the next query (after a model switch)."""
        with self._lock:
            self._cells, self._meta, self._checked_at = None, None, float("-inf")


def nearest(
    store: VectorStore,
    vector: np.ndarray,
    limit: int,
    offset: int = 0,
    label: str | None = None,
    min_score: float | None = None,
    exclude_id: str | None = None,
    hnsw_ef: int | None = None,
    cells: Sequence[int] | None = None,
    collection: str = IMAGES,
) -> list[Hit]:
    """The nearest stored photos, `offset` skipped; with `cells`, the walk's answer merged with a search
    restricted to those cells."""
    if not cells:
        return store.query(
            collection,
            vector,
            limit=limit,
            offset=offset,
            label=label,
            min_score=min_score,
            exclude_id=exclude_id,
            hnsw_ef=hnsw_ef,
        )
    wanted = offset + limit
    walked = store.query(
        collection,
        vector,
        limit=wanted,
        label=label,
        min_score=min_score,
        exclude_id=exclude_id,
        hnsw_ef=hnsw_ef,
    )
    probed = store.query(
        collection, vector, limit=wanted, label=label, min_score=min_score, exclude_id=exclude_id, cells=cells
    )
    return merged(walked, probed)[offset:wanted]


def merged(*answers: list[Hit]) -> list[Hit]:
    """Hits of several searches of one vector, each photo once, best first."""
    best: dict[str, Hit] = {}
    for answer in answers:
        for hit in answer:
            if hit.id not in best or hit.score > best[hit.id].score:
                best[hit.id] = hit
    return sorted(best.values(), key=lambda h: -h.score)
