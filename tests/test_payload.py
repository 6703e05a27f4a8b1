"""The image payload schema: every key once, old points still readable, and the stored-path rule."""

from __future__ import annotations

from pathlib import Path

from core.payload import ImagePayload, ScoredClass, label_fields, library_file, public_path, stored_path


def test_a_payload_round_trips_through_the_store_form() -> None:
    payload = ImagePayload(
        path="north/a.jpg",
        sha256="ab" * 32,
        bytes=1234,
        width=640,
        height=480,
        format="JPEG",
        label="pyramids",
        confidence=0.9,
        top3=(ScoredClass("pyramids", 0.9), ScoredClass("ancient_ruins", 0.05)),
        labels_version="v1",
        attribution={"author": "Jane"},
        ingested_at="2026-12-01T00:00:00+00:00",
        phash=("ff" * 32, "0f" * 32),
        other_paths=("south/a copy.jpg",),
    )
    stored = payload.to_stored()
    assert stored["top3"] == [
        {"id": "pyramids", "confidence": 0.9},
        {"id": "ancient_ruins", "confidence": 0.05},
    ]
    assert ImagePayload.from_stored(stored) == payload


def test_points_written_before_a_key_existed_still_read() -> None:
    old = ImagePayload.from_stored(
        {"path": "a.jpg", "label": "pyramids", "top3": [{"id": "x"}], "width": "?"}
    )
    assert old.path == "a.jpg" and old.label == "pyramids"
    assert old.sha256 is None and old.attribution is None and old.width is None
    assert old.top3 == (ScoredClass("x", None),)
    assert old.phash == () and old.other_paths == ()  # points from before near-duplicates


def test_label_fields_are_the_label_keys_of_the_full_payload() -> None:
    fields = label_fields("pyramids", 0.12345678, [ScoredClass("pyramids", 0.123457)], "v2")
    full = ImagePayload(path="a.jpg").to_stored()
    assert set(fields) < set(full)
    assert fields["confidence"] == 0.123457 and fields["labels_version"] == "v2"


def test_stored_paths_are_relative_inside_the_library_and_absolute_outside(tmp_path: Path) -> None:
    library = tmp_path / "images"
    inside = library / "north" / "a.jpg"
    outside = tmp_path / "other" / "b.jpg"
    assert stored_path(inside, library) == "north/a.jpg"
    assert stored_path(outside, library) == str(outside.resolve())
    assert library_file("north/a.jpg", library) == inside
    assert library_file(str(outside), library) == outside
    assert public_path("north/a.jpg") == "north/a.jpg"
    assert public_path(str(outside)) == "b.jpg"  # no server path is shown
