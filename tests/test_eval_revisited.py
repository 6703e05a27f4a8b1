"""The revisited Oxford/Paris protocol: a worked example with junk images (one query whose positives are
all junk under Hard), and agreement with revisitop's own `compute_map` on random rankings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.revisited import (
    QueryGround,
    as_report,
    evaluate_revisited,
    evaluate_setup,
    rankings_from_similarity,
    setup_ground_truth,
)

# Database of 6 images. Query A: easy 0, 1; hard 2; junk 3. Query B: easy 4, 5; no hard; junk 1.
GND = [
    QueryGround((0, 0, 10, 10), easy=(0, 1), hard=(2,), junk=(3,)),
    QueryGround((0, 0, 10, 10), easy=(4, 5), hard=(), junk=(1,)),
]
RANKINGS = [[3, 0, 5, 2, 1, 4], [4, 1, 0, 5, 2, 3]]


def test_the_published_junk_rules() -> None:
    query = GND[0]
    assert setup_ground_truth(query, "easy") == ({0, 1}, {2, 3})
    assert setup_ground_truth(query, "medium") == ({0, 1, 2}, {3})
    assert setup_ground_truth(query, "hard") == ({2}, {0, 1, 3})
    with pytest.raises(ValueError, match="unknown setup"):
        setup_ground_truth(query, "extreme")


def test_worked_example_with_junk() -> None:
    results = evaluate_revisited(RANKINGS, GND)
    # Medium, query A: without junk image 3 the ranking is 0 5 2 1 4, positives at 0-based ranks 0, 2, 3:
    # trapezoids (1 + 1)/2/3 + (1/2 + 2/3)/2/3 + (2/3 + 3/4)/2/3 = 55/72. Query B: ranks 0, 2 -> 19/24.
    medium = results["medium"]
    assert medium.aps == pytest.approx([55 / 72, 19 / 24])
    assert medium.map == pytest.approx((55 / 72 + 19 / 24) / 2)
    # P@k with revisitop's cut at the last positive: A's positives at 1-based 1, 3, 4 -> P@5 = 3/4.
    assert medium.prs[0] == pytest.approx({1: 1.0, 5: 3 / 4, 10: 3 / 4})
    assert medium.prs[1] == pytest.approx({1: 1.0, 5: 2 / 3, 10: 2 / 3})
    assert medium.mp == pytest.approx({1: 1.0, 5: (3 / 4 + 2 / 3) / 2, 10: (3 / 4 + 2 / 3) / 2})

    # Easy, query A: hard image 2 is junk too -> 0 5 1 4, positives at ranks 0 and 2 -> 19/24.
    easy = results["easy"]
    assert easy.aps == pytest.approx([19 / 24, 19 / 24]) and easy.queries == 2
    assert easy.mp == pytest.approx({1: 1.0, 5: 2 / 3, 10: 2 / 3})

    # Hard: query B's positives (4, 5 are easy) are all junk, so it has none and is left out.
    hard = results["hard"]
    assert hard.queries == 1
    assert hard.aps[0] == pytest.approx(0.25)  # A: 5 2 4 -> its hard image at rank 1: (0 + 1/2) / 2
    assert math.isnan(hard.aps[1]) and all(math.isnan(v) for v in hard.prs[1].values())
    assert hard.map == pytest.approx(0.25)
    assert hard.mp == pytest.approx({1: 0.0, 5: 0.5, 10: 0.5})

    report = as_report(results)
    assert report["hard"] == pytest.approx(
        {"map": 0.25, "mp@1": 0.0, "mp@5": 0.5, "mp@10": 0.5, "queries": 1}
    )


def test_a_setup_where_no_query_has_positives_is_nan() -> None:
    result = evaluate_setup([[0, 1]], [QueryGround((0, 0, 1, 1), easy=(0,), hard=(), junk=())], "hard")
    assert result.queries == 0 and math.isnan(result.map) and math.isnan(result.mp[1])


def test_a_truncated_ranking_without_positives_scores_zero() -> None:
    result = evaluate_setup([[3, 2]], [QueryGround((0, 0, 1, 1), easy=(0, 1), hard=(), junk=(2,))], "medium")
    assert result.aps == [0.0] and result.prs == [{1: 0.0, 5: 0.0, 10: 0.0}]


def test_rankings_from_similarity() -> None:
    similarity = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.7]])
    assert rankings_from_similarity(similarity) == [[1, 2, 0], [0, 2, 1]]


# revisitop's python/evaluate.py, kept as it is published (np.in1d is np.isin in numpy 2), as the
# independent implementation the module is checked against.
def _revisitop_compute_ap(ranks, nres):  # type: ignore[no-untyped-def]
    nimgranks = len(ranks)
    ap = 0
    recall_step = 1.0 / nres
    for j in np.arange(nimgranks):
        rank = ranks[j]
        precision_0 = 1.0 if rank == 0 else float(j) / rank
        precision_1 = float(j + 1) / (rank + 1)
        ap += (precision_0 + precision_1) * recall_step / 2.0
    return ap


def _revisitop_compute_map(ranks, gnd, kappas):  # type: ignore[no-untyped-def]
    map = 0.0
    nq = len(gnd)
    aps = np.zeros(nq)
    pr = np.zeros(len(kappas))
    prs = np.zeros((nq, len(kappas)))
    nempty = 0
    for i in np.arange(nq):
        qgnd = np.array(gnd[i]["ok"])
        if qgnd.shape[0] == 0:
            aps[i] = float("nan")
            prs[i, :] = float("nan")
            nempty += 1
            continue
        qgndj = np.array(gnd[i]["junk"])
        pos = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgnd)]
        junk = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgndj)]
        k = 0
        ij = 0
        if len(junk):
            ip = 0
            while ip < len(pos):
                while ij < len(junk) and pos[ip] > junk[ij]:
                    k += 1
                    ij += 1
                pos[ip] = pos[ip] - k
                ip += 1
        ap = _revisitop_compute_ap(pos, len(qgnd))
        map = map + ap
        aps[i] = ap
        pos += 1
        for j in np.arange(len(kappas)):
            kq = min(max(pos), kappas[j])
            prs[i, j] = (pos <= kq).sum() / kq
        pr = pr + prs[i, :]
    map = map / (nq - nempty)
    pr = pr / (nq - nempty)
    return map, aps, pr, prs


_RULES = {
    "easy": lambda g: ({"ok": list(g.easy), "junk": list(g.junk) + list(g.hard)}),
    "medium": lambda g: ({"ok": list(g.easy) + list(g.hard), "junk": list(g.junk)}),
    "hard": lambda g: ({"ok": list(g.hard), "junk": list(g.junk) + list(g.easy)}),
}


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_revisitops_compute_map(seed: int) -> None:
    rng = np.random.default_rng(seed)
    database, queries = 60, 8
    gnd = []
    for q in range(queries):
        labels = rng.choice(4, size=database, p=[0.7, 0.12, 0.1, 0.08])  # none, easy, hard, junk
        if q == 0:
            labels[labels == 2] = 0  # one query with no hard image: no positives under Hard
        gnd.append(
            QueryGround(
                (0, 0, 1, 1),
                easy=tuple(np.flatnonzero(labels == 1).tolist()),
                hard=tuple(np.flatnonzero(labels == 2).tolist()),
                junk=tuple(np.flatnonzero(labels == 3).tolist()),
            )
        )
    similarity = rng.random((queries, database))
    rankings = rankings_from_similarity(similarity)
    ranks = np.asarray(rankings).T  # revisitop's layout: database x queries
    ours = evaluate_revisited(rankings, gnd)
    for setup, rule in _RULES.items():
        mean_ap, aps, mean_pr, prs = _revisitop_compute_map(ranks, [rule(g) for g in gnd], [1, 5, 10])
        assert ours[setup].map == pytest.approx(mean_ap)
        assert ours[setup].aps == pytest.approx(aps.tolist(), nan_ok=True)
        assert [ours[setup].mp[k] for k in (1, 5, 10)] == pytest.approx(mean_pr.tolist())
        ours_prs = [[row[k] for k in (1, 5, 10)] for row in ours[setup].prs]
        np.testing.assert_allclose(ours_prs, prs, equal_nan=True)
    assert math.isnan(ours["hard"].aps[0])
