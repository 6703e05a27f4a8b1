"""Diverse results: maximal marginal relevance (MMR) over an oversampled set of candidates.

Each next result is the candidate with the best `λ·relevance − (1 − λ)·(max cosine to a result already
chosen)`: with λ = 0.5 a photo much like one above it (cosine ~1) loses half a point and sinks, while
different photos keep their order. A candidate that is the same photo as one already chosen (a re-encode,
a resize: `same`, the near-duplicate rule of search/duplicates.py on the stored perceptual hashes) is
left out altogether; MMR alone cannot do that when the query is that very photo ("more like this"), where
the copies are as relevant as they are redundant. It runs here, in the search layer, over the store's
plain nearest neighbours and their stored vectors, so the embedded and the server store give the same
answer (the server's own MMR and Edge's differ in parameters and tie-breaking).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# The weight of relevance against novelty.
LAMBDA = 0.5
# Candidates fetched per wanted result, and the bounds of that pool.
OVERSAMPLE = 3
MIN_POOL = 48
MAX_POOL = 1000


def pool_size(wanted: int) -> int:
    """How many nearest neighbours to fetch to choose `wanted` diverse results."""
    return min(MAX_POOL, max(MIN_POOL, OVERSAMPLE * wanted))


def mmr_order(
    relevance: np.ndarray,
    vectors: np.ndarray,
    wanted: int,
    lam: float = LAMBDA,
    same: Callable[[int, int], bool] | None = None,
) -> list[int]:
    """Indices of up to `wanted` candidates in MMR order (relevance: their scores; vectors: unit rows),
    never two for which `same(i, j)` holds.

    Ties go to the earlier candidate, so the order is deterministic."""
    count = len(relevance)
    if count == 0:
        return []
    relevance = np.asarray(relevance, dtype=np.float64)
    vectors = np.asarray(vectors, dtype=np.float64)
    closest = np.full(count, -np.inf)  # each candidate's highest cosine to a chosen result
    chosen: list[int] = []
    free = np.ones(count, dtype=bool)
    while len(chosen) < wanted and free.any():
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        gain = np.where(free, lam * relevance - (1 - lam) * penalty, -np.inf)
        best = int(np.argmax(gain))
        chosen.append(best)
        free[best] = False
        closest = np.maximum(closest, vectors @ vectors[best])
        if same is not None:
            for other in np.flatnonzero(free):
                if same(best, int(other)):
                    free[other] = False
    return chosen
