"""How the examples of a refined query become one query vector: the combination rule.

    q = normalise( Σ w_i · u_i  −  Σ w_j · v_j )

with `u_i` the unit vectors of the positive examples, `v_j` those of the negative ones and `w` their
weights (1 unless given), as rclip does (`"cat" + "night" - "dog"`). The store is then asked for the
plain nearest neighbours of `q`, so a refined query costs one index search like any other, the class
filter, `min_score` (on the cosine with `q`) and paging mean what they always mean, and both store
backends give the same answer by construction: the rule runs here, not in an engine.

Why not Qdrant's recommend (best_score): it scores each point against every example separately, which
needs the engine (Edge has it for vectors, but not by id, and the server's local mode differs), makes
`min_score` mean something else, and searches once per example. The weighted sum is linear, so the
contract suite can check it against a brute-force dot product over the stored vectors.

"This photo, but at night" is the photo's vector plus the text's; "towers, not skyscrapers" is the
difference of two text vectors, which leaves what tells a tower from a skyscraper.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from search.errors import BadQuery

# Below this norm the examples cancel out (a term given as both positive and negative).
MIN_NORM = 1e-4


def combine(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The unit query vector of examples with signed weights (negative: move away); see the module.

    Raises BadQuery when no weight is positive, or when the examples cancel each other out."""
    if not vectors or len(vectors) != len(weights):
        raise BadQuery("A query needs at least one example.")
    if not any(w > 0 for w in weights):
        raise BadQuery("A query needs at least one positive example, not only ones to move away from.")
    matrix = np.asarray(vectors, dtype=np.float64)
    scale = np.asarray(weights, dtype=np.float64) / np.maximum(np.linalg.norm(matrix, axis=1), 1e-12)
    total = scale @ matrix
    norm = float(np.linalg.norm(total))
    if norm < MIN_NORM:
        raise BadQuery("The examples cancel each other out; nothing is left to search for.")
    return (total / norm).astype(np.float32)
