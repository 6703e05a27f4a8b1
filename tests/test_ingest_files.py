"""Library files are read safely: regular files only, bounded, and never stored under a stale id."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.model import ClipModel
from core.settings import Settings
from core.store import IMAGES, open_store
from ingest import pipeline
from ingest.files import UnreadableFile, read_regular_file
from tests.image_factory import jpeg_bytes, photo, write


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableFile, match="not a regular file"):
        read_regular_file(fifo, 1 << 20)


def test_files_over_the_cap_are_refused(tmp_path: Path) -> None:
    big = write(tmp_path / "big.jpg", b"\xff" * 5000)
    assert read_regular_file(big, 5000) == b"\xff" * 5000
    with pytest.raises(UnreadableFile, match="too large"):
        read_regular_file(big, 4999)


def test_missing_file_has_a_reason(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="cannot read"):
        read_regular_file(tmp_path / "gone.jpg", 1 << 20)


def test_a_file_changed_between_hashing_and_decoding_is_skipped_not_mislabelled(
    settings: Settings, encoder: ClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        write(settings.images_dir / f"p{i}.jpg", jpeg_bytes(photo(i)))
    original = pipeline._hash_files

    def hash_then_change(*args, **kwargs):  # type: ignore[no-untyped-def]
        candidates = original(*args, **kwargs)
        (settings.images_dir / "p1.jpg").write_bytes(jpeg_bytes(photo(77)))
        return candidates

    monkeypatch.setattr(pipeline, "_hash_files", hash_then_change)
    store = open_store(settings)
    try:
        report = pipeline.run_ingest(settings, encoder, store, show_progress=False)
        assert report.new == 2
        assert [reason for _, reason in report.skipped] == ["changed while being ingested; run ingest again"]
        monkeypatch.setattr(pipeline, "_hash_files", original)
        again = pipeline.run_ingest(settings, encoder, store, show_progress=False)
        assert again.new == 1 and store.count(IMAGES) == 3
    finally:
        store.close()
