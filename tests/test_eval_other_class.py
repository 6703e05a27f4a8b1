""" "None of these": a photo a distractor wins, or whose best class is under the threshold, is labelled
`other`; the threshold comes from data/calibration.json for the model in use, else the default; changing
the threshold or the distractors relabels stored photos from their vectors, without encoding again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from core.calibration import (
    DEFAULT_OTHER_THRESHOLD,
    Calibration,
    CalibrationFileError,
    calibration_path,
    other_threshold,
    read_calibration,
    write_calibration,
)
from core.classes import OTHER, Distractor, LandmarkClass
from core.model import ClipModel
from core.settings import Settings
from core.store import IMAGES, VectorStore, open_store
from core.zero_shot import ZeroShotClassifier, classifier_spec
from ingest.pipeline import run_ingest
from tests.image_factory import jpeg_bytes, photo, write

CLASSES = [
    LandmarkClass(name, name.title(), name, (f"a photo of {name}",)) for name in ("lake", "pyramid", "tower")
]
DISTRACTORS = [Distractor("cat", ("a cat",)), Distractor("food", ("soup",))]


def unit(*values: float) -> np.ndarray:
    """A unit vector in 5 dimensions."""
    vector = np.zeros(5, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def classifier(threshold: float = 0.0) -> ZeroShotClassifier:
    """Classes on axes 0-2, the distractors on axes 3 and 4, CLIP's logit scale."""
    eye = np.eye(5, dtype=np.float32)
    return ZeroShotClassifier(CLASSES, eye[:3], 100.0, DISTRACTORS, eye[3:], threshold)


def test_a_photo_near_a_class_gets_the_class() -> None:
    result = classifier(0.5).classify(unit(1.0, 0.2, 0.1, 0.3))[0]
    assert result.label.id == "lake" and not result.is_other and result.reason is None
    assert result.best.cls.id == "lake" and result.best.confidence > 0.99
    assert result.payload_fields("v")["label"] == "lake"


def test_a_distractor_like_photo_is_other_and_keeps_the_real_top3() -> None:
    vector = unit(0.3, 0.5, 0.1, 0.2, 0.9)  # closest to the "food" distractor
    result = classifier().classify(vector)[0]
    assert result.is_other and result.label == OTHER
    assert result.reason == "distractor" and result.distractor == DISTRACTORS[1]
    assert [s.cls.id for s in result.top3] == ["pyramid", "lake", "tower"]
    payload = result.payload_fields("v")
    assert payload["label"] == "other"
    # The stored confidence stays the best real class's, the one the top 3 starts with.
    assert payload["confidence"] == payload["top3"][0]["confidence"] == round(result.best.confidence, 6)
    assert [t["id"] for t in payload["top3"]] == ["pyramid", "lake", "tower"]


def test_a_class_that_ties_a_distractor_wins() -> None:
    result = classifier().classify(unit(1.0, 0.0, 0.0, 1.0))[0]
    assert result.label.id == "lake"


def test_under_the_threshold_is_other_and_at_it_is_the_class() -> None:
    vector = unit(1.0, 0.99, 0.0)  # lake and pyramid nearly tie
    confidence = classifier().classify(vector)[0].best.confidence
    assert 0.5 < confidence < 0.9
    low = classifier(confidence + 1e-6).classify(vector)[0]
    assert low.is_other and low.reason == "low_confidence" and low.distractor is None
    assert low.best.cls.id == "lake"
    assert classifier(confidence).classify(vector)[0].label.id == "lake"
    assert classifier().with_threshold(confidence + 1e-6).classify(vector)[0].is_other


def test_without_distractors_only_the_threshold_decides() -> None:
    eye = np.eye(5, dtype=np.float32)
    assert ZeroShotClassifier(CLASSES, eye[:3], 100.0).threshold == DEFAULT_OTHER_THRESHOLD
    plain = ZeroShotClassifier(CLASSES, eye[:3], 100.0, threshold=0.5)
    assert plain.winning_distractors(unit(0, 0, 0, 0, 1.0)).tolist() == [-1]
    # Orthogonal to every class: 1/3 each, under 0.5.
    assert plain.classify(unit(0, 0, 0, 0, 1.0))[0].reason == "low_confidence"
    assert plain.classify(unit(1.0))[0].label.id == "lake"


def test_by_id_knows_other() -> None:
    assert classifier().by_id("other") == OTHER
    assert classifier().by_id("tower") == CLASSES[2]
    assert classifier().by_id("cat") is None  # a distractor is no class


@pytest.mark.parametrize(
    ("distractor_rows", "threshold", "message"),
    [(1, 0.0, "one distractor vector per distractor"), (2, 1.5, "from 0 to 1"), (2, -0.1, "from 0 to 1")],
)
def test_bad_classifier_arguments(distractor_rows: int, threshold: float, message: str) -> None:
    eye = np.eye(5, dtype=np.float32)
    with pytest.raises(ValueError, match=message):
        ZeroShotClassifier(CLASSES, eye[:3], 100.0, DISTRACTORS, eye[3 : 3 + distractor_rows], threshold)


# -- the calibration file ------------------------------------------------------------------------------


def fitted(threshold: float, model: str) -> Calibration:
    """A calibration as make eval writes it."""
    return Calibration(threshold, model, "2026-12-01T09:00:00+00:00", 40, 0.8, 0.9, 0.85)


def test_the_calibration_file_round_trips(tmp_path: Path) -> None:
    path = calibration_path(tmp_path / "data")
    assert path == tmp_path / "data" / "calibration.json"
    assert read_calibration(path) is None
    write_calibration(path, fitted(0.42, "some/model"))
    assert read_calibration(path) == fitted(0.42, "some/model")
    assert json.loads(path.read_text(encoding="utf-8"))["threshold"] == 0.42
    assert [p.name for p in path.parent.iterdir()] == ["calibration.json"]  # no temporary file left


def test_the_threshold_is_the_fitted_one_only_for_its_model(tmp_path: Path) -> None:
    choice = other_threshold(tmp_path, "some/model")
    assert choice.value == DEFAULT_OTHER_THRESHOLD and choice.source.startswith("default")
    write_calibration(calibration_path(tmp_path), fitted(0.42, "some/model"))
    choice = other_threshold(tmp_path, "some/model")
    assert choice.value == 0.42 and choice.source.startswith("calibration")
    choice = other_threshold(tmp_path, "another/model")
    assert choice.value == DEFAULT_OTHER_THRESHOLD
    assert "fitted with some/model, not another/model" in choice.source


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "cannot read the calibration file"),
        ("[0.3]", "expected a JSON object"),
        ('{"model": "m"}', "'threshold' must be a number from 0 to 1"),
        ('{"threshold": true, "model": "m"}', "'threshold' must be a number"),
        ('{"threshold": 1.2, "model": "m"}', "'threshold' must be a number"),
        ('{"threshold": 0.3}', "'model' must name the model"),
        ('{"threshold": 0.3, "model": "m", "photos": "many"}', "calibration.json"),
    ],
)
def test_a_malformed_calibration_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = calibration_path(tmp_path)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CalibrationFileError, match=message) as caught:
        other_threshold(tmp_path, "m")
    assert str(path) in str(caught.value)


def test_the_spec_reads_classes_distractors_and_threshold(settings: Settings, tmp_path: Path) -> None:
    spec = classifier_spec(settings.classes_file, settings.data_dir, "m")
    assert len(spec.classes) == 8 and spec.distractors and spec.threshold == DEFAULT_OTHER_THRESHOLD
    write_calibration(calibration_path(settings.data_dir), fitted(0.42, "m"))
    refitted = classifier_spec(settings.classes_file, settings.data_dir, "m")
    assert refitted.threshold == 0.42 and refitted.fingerprint() != spec.fingerprint()


# -- relabelling from stored vectors --------------------------------------------------------------------


def ingest_counting(
    settings: Settings, encoder: ClipModel, store: VectorStore, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, int]:
    """run_ingest, and how many images reached the image tower."""
    seen = []
    real = encoder.image.encode_images

    def counting(images: list[Any], batch_size: int = 8, background: bool = False) -> np.ndarray:
        seen.extend(images)
        return real(images, batch_size=batch_size, background=background)

    monkeypatch.setattr(encoder.image, "encode_images", counting)
    report = run_ingest(settings, encoder, store, show_progress=False)
    monkeypatch.undo()
    return report, len(seen)


def stored_labels(store: VectorStore) -> dict[str, tuple[str, list[str]]]:
    """Path -> (label, top-3 ids) of every stored photo."""
    return {
        p.payload["path"]: (p.payload["label"], [t["id"] for t in p.payload["top3"]])
        for p in store.scroll(IMAGES)
    }


def test_a_new_threshold_or_distractor_relabels_without_encoding(
    make_settings: Any, encoder: ClipModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    for seed in range(5):
        write(settings.images_dir / f"p{seed}.jpg", jpeg_bytes(photo(seed)))
    store = open_store(settings)
    try:
        report, encoded = ingest_counting(settings, encoder, store, monkeypatch)
        assert report.new == 5 and encoded == 5
        before = stored_labels(store)
        assert all(label != "other" for label, _ in before.values())  # the tiny model is over the default

        # A fitted threshold of 1.0 (no 8-class softmax reaches it) makes every photo "none of these".
        write_calibration(calibration_path(settings.data_dir), fitted(1.0, encoder.identity.model))
        report, encoded = ingest_counting(settings, encoder, store, monkeypatch)
        assert encoded == 0 and report.new == 0 and report.relabelled == 5
        after = stored_labels(store)
        assert {label for label, _ in after.values()} == {"other"}
        assert {path: top3 for path, (_, top3) in after.items()} == {p: t for p, (_, t) in before.items()}
        loaded = ZeroShotClassifier.load(store)
        assert loaded is not None and loaded.threshold == 1.0

        # Back to the default threshold, with one new distractor: every photo is relabelled by the new
        # classifier, from its stored vector.
        calibration_path(settings.data_dir).unlink()
        shipped = yaml.safe_load(settings.classes_file.read_text(encoding="utf-8"))
        edited = tmp_path / "classes.yaml"
        shipped["distractors"] = [
            {"id": "everything", "prompts": [p for c in shipped["classes"] for p in c["prompts"]]}
        ]
        edited.write_text(yaml.safe_dump(shipped, allow_unicode=True), encoding="utf-8")
        new_settings = make_settings(classes_file=edited)
        report, encoded = ingest_counting(new_settings, encoder, store, monkeypatch)
        assert encoded == 0 and report.relabelled == 5
        loaded = ZeroShotClassifier.load(store)
        assert loaded is not None and [d.id for d in loaded.distractors] == ["everything"]
        for point in store.scroll(IMAGES, with_vectors=True):
            assert point.vector is not None
            expected = loaded.classify(point.vector)[0]
            assert point.payload["label"] == expected.label.id
            assert point.payload["top3"][0]["id"] == before[point.payload["path"]][1][0]
        again, encoded = ingest_counting(new_settings, encoder, store, monkeypatch)
        assert again.relabelled == 0 and encoded == 0
    finally:
        store.close()
