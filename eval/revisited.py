"""The revisited Oxford and Paris protocol (Radenović et al., CVPR 2018), computed as revisitop does.

Follows `filipradenovic/revisitop` (`python/example_evaluate.py`, `python/evaluate.py`) exactly:

* Per query the ground truth has `easy`, `hard` and `junk` database indices. The three setups:
  Easy: positives = easy, junk = junk + hard. Medium: positives = easy + hard, junk = junk.
  Hard: positives = hard, junk = junk + easy.
* Junk images are taken out of the ranking (the positives' ranks move up by the number of junk images
  before them); they count neither for nor against.
* AP is revisitop's trapezoid rule: for the j-th positive (0-based) at junk-free rank r (0-based) it adds
  ((j / r, or 1 when r = 0) + (j + 1) / (r + 1)) / 2 / n_positives.
* mP@k: with the positives' 1-based ranks, k' = min(last positive's rank, k) and P@k = positives within k'
  over k' (revisitop's rule, so a query with 2 positives at ranks 1 and 2 has P@10 = 1).
* A query with no positives in a setup (e.g. no `hard` images under Hard: its positives are all junk
  there) is left out of that setup's means; its AP and P@k are NaN.

Where this differs from revisitop, only for inputs revisitop never gets: rankings may be truncated (a
positive not retrieved adds nothing to AP; when no positive is retrieved P@k is 0, where revisitop's
`max(pos)` would fail), and a setup in which no query has positives has mean NaN.

MIEB (the benchmark behind the published ROxford Medium / Hard mAP 0.39 / 0.22 and RParis 0.64 / 0.43 for
CLIP ViT-L/14) does not follow these junk rules: its tasks (`ROxfordEasyI2IRetrieval`, ...) score
preprocessed copies of the datasets (`JamieSJS/r-oxford-easy`, ...) with its generic any-to-any retrieval
evaluator, which reports mAP@1000, P@k and nDCG@10 over its own relevance lists, and its Easy P@1 (0.757)
below its Medium P@1 (0.843) cannot happen when hard images are junk under Easy. Numbers from this module
are comparable with the paper's and revisitop's, not with MIEB's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SETUPS = ("easy", "medium", "hard")
KAPPAS = (1, 5, 10)


@dataclass(frozen=True)
class QueryGround:
    """One query's ground truth: its box (x1, y1, x2, y2) and easy / hard / junk database indices."""

    bbx: tuple[float, float, float, float]
    easy: tuple[int, ...]
    hard: tuple[int, ...]
    junk: tuple[int, ...]


@dataclass(frozen=True)
class SetupResult:
    """One setup's mAP and mP@k, with every query's AP and P@k (NaN for a query left out)."""

    setup: str
    map: float
    mp: dict[int, float]
    aps: list[float]
    prs: list[dict[int, float]]
    queries: int


def setup_ground_truth(query: QueryGround, setup: str) -> tuple[set[int], set[int]]:
    """(positives, junk) of a query under Easy, Medium or Hard (the published rules)."""
    if setup == "easy":
        return set(query.easy), set(query.junk) | set(query.hard)
    if setup == "medium":
        return set(query.easy) | set(query.hard), set(query.junk)
    if setup == "hard":
        return set(query.hard), set(query.junk) | set(query.easy)
    raise ValueError(f"unknown setup {setup!r}; expected one of {', '.join(SETUPS)}")


def compute_ap(ranks: Sequence[int], positives: int) -> float:
    """revisitop's trapezoid AP from the junk-free 0-based ranks of the retrieved positives."""
    ap = 0.0
    step = 1.0 / positives
    for j, rank in enumerate(ranks):
        precision_0 = 1.0 if rank == 0 else j / rank
        precision_1 = (j + 1) / (rank + 1)
        ap += (precision_0 + precision_1) * step / 2.0
    return ap


def junk_free_positions(ranking: Sequence[int], positives: set[int], junk: set[int]) -> np.ndarray:
    """0-based ranks of the positives in the ranking once the junk images are taken out."""
    positions = []
    junk_before = 0
    for position, index in enumerate(ranking):
        if index in positives:
            positions.append(position - junk_before)
        # An image in both lists is a positive that also moves later positives up, as in revisitop.
        if index in junk:
            junk_before += 1
    return np.asarray(positions, dtype=np.int64)


def evaluate_setup(
    rankings: Sequence[Sequence[int]], gnd: Sequence[QueryGround], setup: str, kappas: Sequence[int] = KAPPAS
) -> SetupResult:
    """mAP and mP@k of one setup; `rankings[i]` is query i's database indices, best first."""
    if len(rankings) != len(gnd):
        raise ValueError(f"expected one ranking per query, got {len(rankings)} for {len(gnd)}")
    aps: list[float] = []
    prs: list[dict[int, float]] = []
    for ranking, query in zip(rankings, gnd, strict=True):
        positives, junk = setup_ground_truth(query, setup)
        if not positives:
            aps.append(float("nan"))
            prs.append({k: float("nan") for k in kappas})
            continue
        pos = junk_free_positions(ranking, positives, junk)
        aps.append(compute_ap(pos.tolist(), len(positives)))
        one_based = pos + 1
        row = {}
        for k in kappas:
            if not len(one_based):
                row[k] = 0.0
                continue
            cut = min(int(one_based.max()), k)
            row[k] = float((one_based <= cut).sum() / cut)
        prs.append(row)
    counted = [i for i, ap in enumerate(aps) if not np.isnan(ap)]
    mean_ap = float(np.mean([aps[i] for i in counted])) if counted else float("nan")
    mp = {k: float(np.mean([prs[i][k] for i in counted])) if counted else float("nan") for k in kappas}
    return SetupResult(setup, mean_ap, mp, aps, prs, len(counted))


def evaluate_revisited(
    rankings: Sequence[Sequence[int]], gnd: Sequence[QueryGround], kappas: Sequence[int] = KAPPAS
) -> dict[str, SetupResult]:
    """Easy, Medium and Hard results for the same rankings."""
    return {setup: evaluate_setup(rankings, gnd, setup, kappas) for setup in SETUPS}


def rankings_from_similarity(similarity: np.ndarray) -> list[list[int]]:
    """Database indices by descending similarity, one list per query, from a (queries, database) matrix."""
    order = np.argsort(-np.asarray(similarity), axis=1, kind="stable")
    return [row.tolist() for row in order]


def as_report(results: Mapping[str, SetupResult]) -> dict[str, dict[str, float | int]]:
    """The report's form: per setup, mAP, mP@k and how many queries counted."""
    return {
        setup: {"map": r.map, **{f"mp@{k}": v for k, v in r.mp.items()}, "queries": r.queries}
        for setup, r in results.items()
    }
