"""The retrieval sections: text -> image per language with the Russian / English ratio, and image -> image
with "same class" as relevant, worked by hand."""

from __future__ import annotations

import math

import pytest

from eval.queries import TextQuery
from eval.retrieval import retrieval_measures, same_class_section, text_to_image_section


def query(text: str, language: str, relevant: tuple[str, ...], group: str) -> TextQuery:
    """A query as the queries file gives it."""
    return TextQuery(text, language, relevant, group, 1)


def test_text_to_image_per_language_and_the_ratio() -> None:
    queries = [
        query("lakes", "en", ("a", "b"), "1"),
        query("озёра", "ru", ("a", "b"), "1"),
        query("towers", "en", ("t",), "2"),
        query("башни", "ru", ("t",), "2"),
        query("ruins", "en", ("r",), "3"),
    ]
    results = [
        ["a", "x", "b"],  # en: R@1 1/2, R@10 1, AP (1 + 2/3)/2
        ["x", "a"],  # ru: R@10 1/2
        ["t"],
        ["x"] * 10 + ["t"],  # ru: found at 11, R@10 0
        ["y", "r"],
    ]
    section = text_to_image_section(queries, results)
    assert section["en"]["queries"] == 3 and section["ru"]["queries"] == 2
    assert section["en"]["r@1"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert section["en"]["r@10"] == pytest.approx(1.0)
    assert section["en"]["map"] == pytest.approx(((1 + 2 / 3) / 2 + 1 + 1 / 2) / 3)
    assert section["ru"]["r@10"] == pytest.approx((1 / 2 + 0) / 2)
    assert section["ru"]["map"] == pytest.approx((1 / 2 / 2 + 1 / 11) / 2)
    # Pairs 1 and 2: ru R@10 (1/2 + 0)/2, en R@10 (1 + 1)/2.
    assert section["ru_en"] == pytest.approx(
        {"pairs": 2, "ru_r@10": 0.25, "en_r@10": 1.0, "ratio_r@10": 0.25}
    )


def test_without_pairs_the_ratio_is_undefined() -> None:
    section = text_to_image_section([query("lakes", "en", ("a",), "1")], [["a"]])
    assert section["ru_en"]["pairs"] == 0 and math.isnan(section["ru_en"]["ratio_r@10"])
    with pytest.raises(ValueError, match="one result list per query"):
        text_to_image_section([query("lakes", "en", ("a",), "1")], [])


def test_same_class_image_to_image() -> None:
    labels = ["lake", "lake", "lake", "tower", "tower"]
    neighbours = [
        [0, 1, 3, 2, 4],  # itself first (left out): lake 1 at 1, lake 2 at 3 -> AP@100 (1 + 2/3)/2
        [0, 2, 3, 4],  # both lakes first -> AP 1
        [3, 4, 0, 1],  # lakes at 3 and 4 -> (1/3 + 2/4)/2
        [4, 0, 1, 2],  # tower 4 first -> 1
        [0, 1, 2, 3],  # tower 3 at 4 -> 1/4
    ]
    section = same_class_section(labels, neighbours)
    assert section["queries"] == 5
    aps = [(1 + 2 / 3) / 2, 1.0, (1 / 3 + 2 / 4) / 2, 1.0, 1 / 4]
    assert section["map@100"] == pytest.approx(sum(aps) / 5)
    assert section["p@1"] == pytest.approx((1 + 1 + 0 + 1 + 0) / 5)
    assert section["p@5"] == pytest.approx((2 + 2 + 2 + 1 + 1) / 5 / 5)


def test_a_query_with_nothing_relevant_is_left_out() -> None:
    measures = retrieval_measures([["a"], ["b"]], [set(), {"b"}])
    assert measures == pytest.approx({"queries": 1, "r@1": 1.0, "r@5": 1.0, "r@10": 1.0, "map": 1.0})
    # A class of one photo: nothing else is relevant to it.
    assert same_class_section(["lake", "tower", "tower"], [[0, 1, 2], [1, 2, 0], [2, 1, 0]])["queries"] == 2
