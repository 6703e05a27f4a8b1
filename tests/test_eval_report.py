"""The report: the classification section, the prompt ablation, report.json / report.md / PNG charts that
agree with each other, and the comparison with the previous run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from core.classes import LandmarkClass
from eval.classification import classification_section
from eval.prompts import prompt_ablation, prompts_section
from eval.report import compare, eval_root, latest_report, new_run_dir, render_markdown, write_report

LAKE = LandmarkClass("lake", "Lake", "Озеро", ("a lake", "a pond", "a tower"))
TOWER = LandmarkClass("tower", "Tower", "Башня", ("a tower", "a skyscraper"))


def at(*degrees: float) -> np.ndarray:
    """Unit vectors in the plane at these angles."""
    radians = np.radians(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def test_prompt_ablation_finds_the_prompt_that_hurts() -> None:
    # Lake prompts at 0, 10 and 90 degrees (the last one is really a tower prompt), tower prompts at 90 and 80.
    # The lake ensemble sits at 30.6 degrees, the tower one at 85: the tower photo at 52 degrees is called a
    # lake. Without the 90-degree prompt the lake ensemble sits at 5 degrees and every photo is right.
    images = at(5, 20, 35, 52, 88)
    truth = ["lake", "lake", "lake", "tower", "tower"]
    prompt_vectors = {"lake": at(0, 10, 90), "tower": at(90, 80)}
    ensemble, results = prompt_ablation(images, truth, [LAKE, TOWER], prompt_vectors)
    assert ensemble == pytest.approx(4 / 5)
    assert len(results) == 5
    by_prompt = {(r.class_id, r.prompt): r for r in results}
    bad = by_prompt[("lake", "a tower")]
    assert bad.without_accuracy == pytest.approx(1.0) and bad.without_class_recall == pytest.approx(1.0)
    # Alone, the lake vector (90) is beaten by the tower ensemble (85) everywhere under 87.5 degrees.
    assert bad.single_accuracy == pytest.approx(1 / 5) and bad.single_class_recall == 0.0
    good = by_prompt[("lake", "a lake")]
    assert good.single_accuracy == pytest.approx(1.0)
    assert good.without_accuracy == pytest.approx(4 / 5)  # 10 and 90 still make a lake vector at 50
    section = prompts_section(ensemble, results)
    row = next(r for r in section["rows"] if r["prompt"] == "a tower" and r["class_id"] == "lake")
    assert row["without_delta"] == pytest.approx(1 / 5) and row["single_delta"] == pytest.approx(-3 / 5)


def test_prompt_ablation_needs_photos_and_matching_vectors() -> None:
    vectors = {"lake": np.eye(2)[:1], "tower": np.eye(2)[1:]}
    with pytest.raises(ValueError, match="no photo of any class"):
        prompt_ablation(np.eye(2), ["other", "other"], [LAKE, TOWER], vectors)
    with pytest.raises(ValueError, match="1 prompt vectors for 3 prompts"):
        prompt_ablation(np.eye(2), ["lake", "tower"], [LAKE, TOWER], vectors)


def section() -> dict[str, Any]:
    """A classification section of 6 photos, one of them `other`."""
    truth = ["lake", "lake", "tower", "tower", "other", "lake"]
    answers = ["lake", "tower", "tower", "other", "other", "lake"]
    ranked = [
        ["lake", "tower"],
        ["tower", "lake"],
        ["tower", "lake"],
        ["other", "tower"],
        ["other", "lake"],
        ["lake"],
    ]
    confidence = [0.9, 0.6, 0.8, 0.3, 0.4, 0.95]
    correct = [True, False, True, True, False, True]
    return classification_section(truth, answers, ranked, confidence, correct, ["lake", "tower", "other"])


def test_the_classification_section() -> None:
    result = section()
    assert result["photos"] == 6
    assert result["top1_accuracy"] == pytest.approx(4 / 6)
    assert result["top3_accuracy"] == pytest.approx(1.0)
    assert result["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert result["confusion_matrix"]["matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert sum(b["count"] for b in result["calibration"]["bins"]) == 6


def report(accuracy_shift: float = 0.0) -> dict[str, Any]:
    """A report as part B writes it, with every charted section and a NaN."""
    classification = section()
    classification["top1_accuracy"] += accuracy_shift
    images = np.array([[1.0, 0.1], [0.1, 1.0]])
    vectors = {
        "lake": np.array([[1.0, 0.0], [1.0, 0.2], [0.3, 1.0]]),
        "tower": np.array([[0.0, 1.0], [0.2, 1.0]]),
    }
    classification["prompts"] = prompts_section(
        *prompt_ablation(images, ["lake", "tower"], [LAKE, TOWER], vectors)
    )
    return {
        "settings": {"clip_precision": "fp32", "encode_batch_size": 8},
        "model": {"name": "tiny", "dim": 2},
        "classification": classification,
        "text_to_image": {
            "en": {"r@1": 0.5, "r@10": 0.9, "map": 0.6},
            "ru": {"r@1": 0.25, "r@10": 0.7, "map": 0.4},
        },
        "revisited": {"roxford5k": {"hard": {"map": float("nan"), "queries": 0}}},
    }


def test_the_report_files_agree_with_the_json(tmp_path: Path) -> None:
    root = eval_root(tmp_path / "data")
    when = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    run = write_report(root, report(), now=when)
    assert run == root / "20261201T093000Z"
    data = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert data["created_at"] == "2026-12-01T09:30:00+00:00"
    assert data["revisited"]["roxford5k"]["hard"]["map"] is None  # NaN is written as null
    assert data["previous"] is None
    assert data["charts"] == {
        "confusion_matrix": "confusion_matrix.png",
        "reliability": "reliability.png",
        "prompts": "prompts.png",
    }
    for file in data["charts"].values():
        with Image.open(run / file) as png:
            assert png.format == "PNG" and png.width > 200 and png.height > 200
    markdown = (run / "report.md").read_text(encoding="utf-8")
    assert markdown == render_markdown(data)
    assert f"| top1_accuracy | {data['classification']['top1_accuracy']:.4f} |" in markdown
    assert "| lake | 2 | 1 | 0 |" in markdown  # the confusion matrix's first row
    assert "|  | r@1 | r@10 | map |" in markdown and "| ru | 0.2500 | 0.7000 | 0.4000 |" in markdown
    assert "![reliability](reliability.png)" in markdown
    assert "This is the first run." in markdown


def test_the_next_run_is_compared_with_the_previous(tmp_path: Path) -> None:
    root = tmp_path / "eval"
    when = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    first = write_report(root, report(), now=when)
    second = write_report(root, report(accuracy_shift=0.1), now=when + timedelta(hours=1))
    data = json.loads((second / "report.json").read_text(encoding="utf-8"))
    assert data["previous"]["run"] == first.name
    changed = [c for c in data["previous"]["changes"] if c["change"]]
    assert [c["measure"] for c in changed] == ["classification.top1_accuracy"]
    assert changed[0]["change"] == pytest.approx(0.1)
    measures = {c["measure"] for c in data["previous"]["changes"]}
    assert "text_to_image.ru.r@10" in measures and "settings.encode_batch_size" not in measures
    assert not any("bins" in m or "matrix" in m for m in measures)
    markdown = (second / "report.md").read_text(encoding="utf-8")
    assert f"Compared with run {first.name}: 1 of {len(measures)} measures changed." in markdown
    assert "| classification.top1_accuracy |" in markdown and "+0.1000" in markdown
    assert latest_report(root) is not None and latest_report(root)[0] == second  # type: ignore[index]
    assert latest_report(root, before=second)[0] == first  # type: ignore[index]


def test_run_folders_never_collide_and_broken_runs_are_skipped(tmp_path: Path) -> None:
    when = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    assert new_run_dir(tmp_path, when).name == "20261201T093000Z"
    assert new_run_dir(tmp_path, when).name == "20261201T093000Z-2"
    (tmp_path / "20261201T093000Z-2" / "report.json").write_text("{broken", encoding="utf-8")
    assert latest_report(tmp_path) is None
    assert latest_report(tmp_path / "missing") is None
    assert compare({"a": {"b": 1, "c": True}}, {"a": {"b": 3}}) == [
        {"measure": "a.b", "previous": 3.0, "current": 1.0, "change": -2.0}
    ]
