"""The ingest pipeline (ingest/pipeline.py), in-process with the tiny CLIP: every case of the generated
library, complete payloads, thumbnails once, and the runs after the first one encode only what is new
(renames, copies, edited prompts), while another model is refused unless the collection is rebuilt."""

from __future__ import annotations

import functools
import io
import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from core.classes import load_classes, load_distractors
from core.ids import image_point_id, sha256_hex
from core.images import decode_image
from core.model import ClipModel
from core.settings import Settings
from core.store import IMAGES, PROMPTS, CollectionMismatch, VectorStore, open_store
from core.thumbnails import thumb_path
from core.zero_shot import ZeroShotClassifier, classifier_spec
from devtools.tiny_clip import build_tiny_clip
from ingest.pipeline import IngestReport, run_ingest
from tests import image_factory
from tests.image_factory import jpeg_bytes, library_with_every_case, photo, write

CLASS_IDS = {
    "waterfalls_lakes",
    "pyramids",
    "colorful_mountains",
    "moscow_kremlin",
    "ancient_ruins",
    "towers_skyscrapers",
    "cappadocia_balloons",
    "pillar_mountains",
}
ATTRIBUTION = {
    "title": "Photo one",
    "author": "Ann Example",
    "license": "CC BY-SA 4.0",
    "license_url": "https://creativecommons.org/licenses/by-sa/4.0/",
    "source_url": "https://example.org/photo_1",
    "source": "wikimedia",
}
SKIP_REASONS = {
    "empty.jpg": "empty file",
    "truncated.jpg": "truncated",
    "text.jpg": "not an image",
    "bomb.png": "too many pixels",
    "photo.heic": "unsupported format",
}
SIZES = {
    "odd/rotated.jpg": (100, 200),
    "odd/cmyk.jpg": (320, 240),
    "odd/sixteen.png": (64, 64),
    "odd/palette.png": (320, 240),
    "odd/transparent.png": (64, 64),
    "odd/animated.gif": (96, 96),
}


class EncodeCounter:
    """Counts the images that reach the image tower."""

    def __init__(self, encoder: ClipModel, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.images = 0
        real = encoder.image.encode_images

        def counting(images: list[Image.Image], batch_size: int = 8, background: bool = False) -> np.ndarray:
            self.calls += 1
            self.images += len(images)
            return real(images, batch_size=batch_size, background=background)

        monkeypatch.setattr(encoder.image, "encode_images", counting)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread during these tests: on 2 cores the decode threads and torch's OpenMP workers
    otherwise fight over the CPU, and the tiny model runs several times slower. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_bomb_png = functools.cache(image_factory.bomb_png)  # the same 12000x12000 file for every test


@pytest.fixture
def library(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The library with every case, plus a manifest beside the good photos."""
    monkeypatch.setattr(image_factory, "bomb_png", _bomb_png)
    expected = library_with_every_case(settings.images_dir)
    manifest = {
        "photo_1.jpg": ATTRIBUTION,
        "photo_2.jpg": {"author": "Bo", "license": "CC0", "title": ""},
        "not_here.jpg": {"author": "nobody"},
    }
    (settings.images_dir / "good" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return expected


@pytest.fixture
def store(settings: Settings) -> Iterator[VectorStore]:
    """The embedded store of the test settings."""
    opened = open_store(settings)
    yield opened
    opened.close()


@pytest.fixture
def counter(encoder: ClipModel, monkeypatch: pytest.MonkeyPatch) -> EncodeCounter:
    """Counts image encodes for the rest of the test."""
    return EncodeCounter(encoder, monkeypatch)


def ingest(settings: Settings, encoder: ClipModel, store: VectorStore, **kwargs: Any) -> IngestReport:
    """run_ingest without progress bars."""
    return run_ingest(settings, encoder, store, show_progress=False, **kwargs)


def payloads(store: VectorStore) -> dict[str, dict[str, Any]]:
    """Every image point's payload by path."""
    return {p.payload["path"]: p.payload for p in store.scroll(IMAGES)}


def thumbs(settings: Settings) -> dict[Path, int]:
    """Every thumbnail file and its modification time."""
    return {p: p.stat().st_mtime_ns for p in settings.thumbs_dir.rglob("*") if p.is_file()}


def test_every_case_of_the_library(
    settings: Settings, encoder: ClipModel, store: VectorStore, library: dict[str, int]
) -> None:
    progress: list[tuple[str, int, int]] = []
    report = ingest(settings, encoder, store, on_progress=lambda *args: progress.append(args))

    assert report.new == library["indexed"] == 12
    assert report.duplicates == library["duplicates"] == 1
    assert len(report.skipped) == library["skipped"] == 5
    assert report.already_indexed == report.renamed == report.relabelled == 0
    assert report.total_points == store.count(IMAGES) == 12
    reasons = {Path(path).name: reason for path, reason in report.skipped}
    assert set(reasons) == set(SKIP_REASONS)
    for name, fragment in SKIP_REASONS.items():
        assert fragment in reasons[name], (name, reasons[name])
        assert "\n" not in reasons[name]
    assert "notes.txt" not in " ".join(p for p, _ in report.skipped)
    # 15 distinct non-empty files with image names reach the decoders (12 good, 3 refused there): the
    # progress counts the 12 indexed, the 3 refused leave its total (issue 13: "38/38" for "new: 35").
    assert progress and progress[-1] == ("encoding", 12, 12)
    summary = report.summary()
    assert "new: 12" in summary and "skipped: 5" in summary and "images/s" in summary
    assert report.as_dict()["new"] == 12 and len(report.as_dict()["skipped"]) == 5


def test_payloads_are_complete(
    settings: Settings, encoder: ClipModel, store: VectorStore, library: dict[str, int]
) -> None:
    ingest(settings, encoder, store)
    fingerprint = classifier_spec(
        settings.classes_file, settings.data_dir, encoder.identity.model
    ).fingerprint()
    points = {p.id: p for p in store.scroll(IMAGES, with_vectors=True)}
    assert len(points) == 12
    paths = set()
    for point_id, point in points.items():
        payload = point.payload
        file = settings.images_dir / payload["path"]
        paths.add(payload["path"])
        assert not Path(payload["path"]).is_absolute() and file.is_file()
        assert payload["sha256"] == sha256_hex(file.read_bytes())
        assert point_id == image_point_id(payload["sha256"])
        assert payload["bytes"] == file.stat().st_size
        assert payload["width"] > 0 and payload["height"] > 0
        assert payload["label"] in CLASS_IDS
        assert 0 < payload["confidence"] <= 1
        top3 = payload["top3"]
        assert len(top3) == 3 and len({t["id"] for t in top3}) == 3
        assert {t["id"] for t in top3} <= CLASS_IDS
        assert [t["confidence"] for t in top3] == sorted((t["confidence"] for t in top3), reverse=True)
        assert top3[0] == {"id": payload["label"], "confidence": payload["confidence"]}
        assert payload["labels_version"] == fingerprint
        assert datetime.fromisoformat(payload["ingested_at"]).tzinfo is not None
        assert point.vector is not None and point.vector.shape == (encoder.dim,)
        assert np.linalg.norm(point.vector) == pytest.approx(1.0, abs=1e-5)
    # The duplicate collapses onto one point; which of the two paths it keeps is the first in order.
    assert len(paths & {"good/photo_0.jpg", "dupes/copy_of_0.jpg"}) == 1
    by_path = payloads(store)
    for path, size in SIZES.items():
        assert (by_path[path]["width"], by_path[path]["height"]) == size, path
    assert by_path["good/photo_3.jpg"]["format"] == "JPEG"
    assert by_path["odd/animated.gif"]["format"] == "GIF"

    # Attribution comes from the manifest beside the photo; blank fields are left out.
    assert by_path["good/photo_1.jpg"]["attribution"] == ATTRIBUTION
    assert by_path["good/photo_2.jpg"]["attribution"] == {"author": "Bo", "license": "CC0"}
    assert by_path["good/photo_4.jpg"]["attribution"] is None
    assert by_path["odd/cmyk.jpg"]["attribution"] is None

    # The stored vector is the encoder's vector of the decoded file, and its label the classifier's.
    stored = next(p for p in points.values() if p.payload["path"] == "good/photo_4.jpg")
    decoded = decode_image(settings.images_dir / "good/photo_4.jpg", settings.max_image_pixels, 64)
    again = encoder.image.encode_images([decoded.image])[0]
    assert float(again @ stored.vector) > 0.9999  # type: ignore[operator]
    classifier = ZeroShotClassifier.load(store)
    assert classifier is not None and [c.id for c in classifier.classes] == [
        c.id for c in load_classes(settings.classes_file)
    ]
    assert classifier.classify(stored.vector)[0].label.id == stored.payload["label"]  # type: ignore[arg-type]
    assert [d.id for d in classifier.distractors] == [d.id for d in load_distractors(settings.classes_file)]
    assert store.count(PROMPTS) == 8 + len(classifier.distractors)


def test_thumbnails_are_written_once(
    settings: Settings, encoder: ClipModel, store: VectorStore, library: dict[str, int]
) -> None:
    ingest(settings, encoder, store)
    first = thumbs(settings)
    assert len(first) == 12
    for point in store.scroll(IMAGES):
        path = thumb_path(settings.thumbs_dir, point.id)
        assert path in first
        thumb = Image.open(io.BytesIO(path.read_bytes()))
        assert thumb.format == "JPEG" and max(thumb.size) <= settings.thumb_size
    ingest(settings, encoder, store)
    assert thumbs(settings) == first  # same files, not rewritten


def test_second_run_encodes_nothing(
    settings: Settings,
    encoder: ClipModel,
    store: VectorStore,
    library: dict[str, int],
    counter: EncodeCounter,
) -> None:
    ingest(settings, encoder, store)
    assert counter.images == 12
    before = payloads(store)
    counter.calls = counter.images = 0
    report = ingest(settings, encoder, store)
    assert counter.calls == 0
    assert report.new == 0
    assert report.already_indexed == 12
    assert report.duplicates == 1
    assert len(report.skipped) == 5
    assert report.relabelled == report.renamed == 0
    assert report.total_points == 12
    assert payloads(store) == before


def test_renamed_file_is_not_re_encoded(
    settings: Settings,
    encoder: ClipModel,
    store: VectorStore,
    library: dict[str, int],
    counter: EncodeCounter,
) -> None:
    ingest(settings, encoder, store)
    counter.images = 0
    target = settings.images_dir / "trips" / "holiday.jpg"
    target.parent.mkdir()
    (settings.images_dir / "good" / "photo_2.jpg").rename(target)
    report = ingest(settings, encoder, store)
    assert counter.images == 0
    assert report.new == 0 and report.renamed == 1 and report.already_indexed == 12
    by_path = payloads(store)
    assert "good/photo_2.jpg" not in by_path
    assert by_path["trips/holiday.jpg"]["sha256"] == sha256_hex(target.read_bytes())
    assert store.count(IMAGES) == 12


def test_deleted_files_are_reported_and_pruned_on_request(
    settings: Settings,
    encoder: ClipModel,
    store: VectorStore,
    library: dict[str, int],
    counter: EncodeCounter,
) -> None:
    ingest(settings, encoder, store)
    counter.images = 0
    gone = settings.images_dir / "good" / "photo_3.jpg"
    gone_id = image_point_id(sha256_hex(gone.read_bytes()))
    gone.unlink()
    report = ingest(settings, encoder, store)
    assert report.missing == 1 and report.pruned == 0
    assert "--prune" in report.summary()
    assert store.count(IMAGES) == 12
    report = ingest(settings, encoder, store, prune=True)
    assert report.pruned == 1 and report.missing == 0
    assert store.count(IMAGES) == 11
    assert not store.retrieve(IMAGES, [gone_id])
    assert not thumb_path(settings.thumbs_dir, gone_id).exists()
    assert counter.images == 0


def test_copied_file_is_not_re_encoded(
    settings: Settings,
    encoder: ClipModel,
    store: VectorStore,
    library: dict[str, int],
    counter: EncodeCounter,
) -> None:
    ingest(settings, encoder, store)
    counter.images = 0
    shutil.copy(settings.images_dir / "good" / "photo_3.jpg", settings.images_dir / "again.jpg")
    report = ingest(settings, encoder, store)
    assert counter.images == 0
    assert report.new == 0 and report.renamed == 0 and report.duplicates == 2
    assert store.count(IMAGES) == 12
    assert "good/photo_3.jpg" in payloads(store)  # the original still exists: its path stays


def test_new_photos_only_are_encoded(
    settings: Settings,
    encoder: ClipModel,
    store: VectorStore,
    library: dict[str, int],
    counter: EncodeCounter,
) -> None:
    ingest(settings, encoder, store)
    counter.images = 0
    for i in range(3):
        write(settings.images_dir / "more" / f"new_{i}.jpg", jpeg_bytes(photo(500 + i)))
    report = ingest(settings, encoder, store)
    assert counter.images == 3
    assert report.new == 3 and report.already_indexed == 12 and report.total_points == 15


def test_explicit_paths(settings: Settings, encoder: ClipModel, store: VectorStore, tmp_path: Path) -> None:
    inside = write(settings.images_dir / "a.jpg", jpeg_bytes(photo(1)))
    write(settings.images_dir / "b.jpg", jpeg_bytes(photo(2)))
    outside = write(tmp_path / "elsewhere" / "c.jpg", jpeg_bytes(photo(3)))
    report = ingest(settings, encoder, store, paths=[inside, outside, tmp_path / "missing"])
    assert report.new == 2
    assert [reason for _, reason in report.skipped] == ["no such file or folder"]
    assert set(payloads(store)) == {"a.jpg", str(outside.resolve())}


def test_edited_prompts_relabel_without_encoding(
    settings: Settings,
    make_settings: Any,
    encoder: ClipModel,
    store: VectorStore,
    library: dict[str, int],
    counter: EncodeCounter,
    tmp_path: Path,
) -> None:
    ingest(settings, encoder, store)
    old_fingerprint = next(iter(payloads(store).values()))["labels_version"]
    counter.calls = counter.images = 0

    shipped = yaml.safe_load(settings.classes_file.read_text(encoding="utf-8"))
    kept = shipped["classes"][:3]
    for entry in kept:
        entry["prompts"] = [*entry["prompts"][:2], f"a landscape photo, {entry['name'].lower()}"]
    edited = tmp_path / "classes.yaml"
    edited.write_text(yaml.safe_dump({"classes": kept}, allow_unicode=True), encoding="utf-8")
    new_settings = make_settings(classes_file=edited)

    report = ingest(new_settings, encoder, store)
    assert counter.calls == 0
    assert report.new == 0 and report.relabelled == 12
    fingerprint = classifier_spec(edited, settings.data_dir, encoder.identity.model).fingerprint()
    assert fingerprint != old_fingerprint
    kept_ids = {entry["id"] for entry in kept}
    classifier = ZeroShotClassifier.load(store)
    assert classifier is not None and {c.id for c in classifier.classes} == kept_ids
    assert store.count(PROMPTS) == 3
    for point in store.scroll(IMAGES, with_vectors=True):
        assert point.payload["labels_version"] == fingerprint
        assert point.payload["label"] in kept_ids
        assert {t["id"] for t in point.payload["top3"]} == kept_ids
        assert classifier.classify(point.vector)[0].label.id == point.payload["label"]  # type: ignore[arg-type]

    again = ingest(new_settings, encoder, store)
    assert again.relabelled == 0 and counter.calls == 0


def test_another_model_is_refused_until_recreate(
    settings: Settings,
    make_settings: Any,
    encoder: ClipModel,
    store: VectorStore,
    library: dict[str, int],
    tmp_path: Path,
) -> None:
    ingest(settings, encoder, store)
    other_dir = build_tiny_clip(tmp_path / "tiny-clip-24", dim=24, seed=1)
    other = ClipModel(str(other_dir), device="cpu", precision="fp32")
    assert other.dim == 24
    other_settings = make_settings(clip_model=str(other_dir))

    with pytest.raises(CollectionMismatch) as caught:
        ingest(other_settings, other, store)
    assert "--recreate" in str(caught.value)
    assert store.count(IMAGES) == 12  # nothing was touched

    report = ingest(other_settings, other, store, recreate=True)
    assert report.new == 12 and report.total_points == 12
    assert store.collection_meta(IMAGES)["model"] == str(other_dir)  # type: ignore[index]
    assert store.collection_meta(PROMPTS)["dim"] == 24  # type: ignore[index]
    vectors = [p.vector for p in store.scroll(IMAGES, with_vectors=True)]
    assert all(v is not None and v.shape == (24,) for v in vectors)
    assert store.count(PROMPTS) == 8 + len(load_distractors(settings.classes_file))
    # And now the first model is the one refused.
    with pytest.raises(CollectionMismatch):
        ingest(settings, encoder, store)
