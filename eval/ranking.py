"""Retrieval measures over one ranked list of ids and the set of relevant ids: average precision, P@k,
R@k, hit@k and AP@k (mean over queries gives mAP@k).

Ids are any hashable values (photo paths, point ids). AP is the non-interpolated average of the precision
at each relevant hit, over all relevant items (a relevant item never retrieved adds 0), as in TREC and
scikit-learn's `average_precision_score` on a fully ranked list.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence

import numpy as np


def _hits(ranking: Sequence[Hashable], relevant: Collection[Hashable]) -> np.ndarray:
    wanted = set(relevant)
    return np.asarray([item in wanted for item in ranking], dtype=bool)


def average_precision(ranking: Sequence[Hashable], relevant: Collection[Hashable]) -> float:
    """Mean over the relevant items of the precision at the rank each is found (0 when not found)."""
    if not relevant:
        return float("nan")
    hits = _hits(ranking, relevant)
    ranks = np.flatnonzero(hits) + 1
    precisions = np.arange(1, len(ranks) + 1) / ranks
    return float(precisions.sum() / len(set(relevant)))


def average_precision_at_k(ranking: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """AP@k as in the Google Landmarks v2 retrieval task: the sum of P@i at the relevant hits among the
    first k, divided by min(k, number of relevant). The mean over queries is mAP@k."""
    if not relevant:
        return float("nan")
    _check_k(k)
    hits = _hits(list(ranking)[:k], relevant)
    ranks = np.flatnonzero(hits) + 1
    precisions = np.arange(1, len(ranks) + 1) / ranks
    return float(precisions.sum() / min(k, len(set(relevant))))


def precision_at_k(ranking: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """The fraction of the first k results that are relevant (missing results count as wrong)."""
    _check_k(k)
    return float(_hits(list(ranking)[:k], relevant).sum() / k)


def recall_at_k(ranking: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """The fraction of the relevant items found among the first k results."""
    if not relevant:
        return float("nan")
    _check_k(k)
    return float(_hits(list(ranking)[:k], relevant).sum() / len(set(relevant)))


def hit_at_k(ranking: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """1 when any relevant item is among the first k results, else 0 (the CLIP papers' "R@k")."""
    _check_k(k)
    return float(_hits(list(ranking)[:k], relevant).any())


def mean(values: Sequence[float]) -> float:
    """The mean of the defined values (queries with no relevant item give NaN and are left out)."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError("k must be at least 1")
