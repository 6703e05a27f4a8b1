"""The report's retrieval sections from ranked results: text -> image per language (with the Russian /
English R@10 ratio) and image -> image with "same class" as relevant."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Hashable, Sequence
from typing import Any

from eval import ranking
from eval.queries import TextQuery, language_pairs


def retrieval_measures(
    rankings: Sequence[Sequence[Hashable]],
    relevant: Sequence[Collection[Hashable]],
    recall_ks: Sequence[int] = (1, 5, 10),
    precision_ks: Sequence[int] = (),
    map_k: int | None = None,
) -> dict[str, float | int]:
    """Mean R@k, P@k, mAP (full ranking) and mAP@map_k over the queries; queries with nothing relevant
    are left out of every mean."""
    if len(rankings) != len(relevant):
        raise ValueError(f"expected one ranking per query, got {len(rankings)} for {len(relevant)}")
    pairs = [(r, rel) for r, rel in zip(rankings, relevant, strict=True) if rel]
    result: dict[str, float | int] = {"queries": len(pairs)}
    for k in recall_ks:
        result[f"r@{k}"] = ranking.mean([ranking.recall_at_k(r, rel, k) for r, rel in pairs])
    for k in precision_ks:
        result[f"p@{k}"] = ranking.mean([ranking.precision_at_k(r, rel, k) for r, rel in pairs])
    result["map"] = ranking.mean([ranking.average_precision(r, rel) for r, rel in pairs])
    if map_k is not None:
        result[f"map@{map_k}"] = ranking.mean(
            [ranking.average_precision_at_k(r, rel, map_k) for r, rel in pairs]
        )
    return result


def text_to_image_section(queries: Sequence[TextQuery], results: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Per language R@1/5/10 and mAP, and, over queries given in both, Russian R@10 / English R@10.

    `results[i]` is query i's photo paths, best first (the same form as `relevant`)."""
    if len(queries) != len(results):
        raise ValueError(f"expected one result list per query, got {len(results)} for {len(queries)}")
    by_language: dict[str, list[int]] = defaultdict(list)
    for i, query in enumerate(queries):
        by_language[query.language].append(i)
    section: dict[str, Any] = {
        language: retrieval_measures([results[i] for i in idx], [queries[i].relevant for i in idx])
        for language, idx in sorted(by_language.items())
    }
    index = {id(q): i for i, q in enumerate(queries)}
    pairs = language_pairs(list(queries), "ru", "en")
    ru = ranking.mean([ranking.recall_at_k(results[index[id(r)]], r.relevant, 10) for r, _ in pairs])
    en = ranking.mean([ranking.recall_at_k(results[index[id(e)]], e.relevant, 10) for _, e in pairs])
    section["ru_en"] = {
        "pairs": len(pairs),
        "ru_r@10": ru,
        "en_r@10": en,
        "ratio_r@10": ru / en if pairs and en > 0 else float("nan"),
    }
    return section


def same_class_section(
    labels: Sequence[str], neighbours: Sequence[Sequence[int]], map_k: int = 100
) -> dict[str, float | int]:
    """Image -> image over a labelled set: each photo is a query, `neighbours[i]` the indices of the other
    photos best first (itself left out), relevant = the other photos of its class. mAP@k and P@1/5/10."""
    if len(labels) != len(neighbours):
        raise ValueError(f"expected one neighbour list per photo, got {len(neighbours)} for {len(labels)}")
    members: dict[str, set[int]] = defaultdict(set)
    for i, label in enumerate(labels):
        members[label].add(i)
    relevant = [members[label] - {i} for i, label in enumerate(labels)]
    rankings = [[j for j in row if j != i] for i, row in enumerate(neighbours)]
    return retrieval_measures(rankings, relevant, recall_ks=(), precision_ks=(1, 5, 10), map_k=map_k)
