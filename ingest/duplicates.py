"""Ingest's part of near-duplicates: remember every path of a byte-identical file, check new photos.

The rule and the groups are `search/duplicates.py`; this only feeds them after a run has written its points.
"""

from __future__ import annotations

from pathlib import Path

from core.payload import ImagePayload, library_file, other_paths_fields, stored_path
from core.settings import Settings
from core.store.base import IMAGES, VectorStore
from search.duplicates import DuplicateBook, DuplicateFinder, book_path


def check_duplicates(
    settings: Settings, store: VectorStore, new_ids: list[str], collapsed: dict[str, list[Path]]
) -> int:
    """Record the further paths of byte-identical files, then check the new photos for near-duplicates
    (the whole library on the first run with near-duplicates, search/duplicates.py). Returns how many
    photos were found to be near-duplicates."""
    _remember_paths(settings, store, collapsed)
    book = DuplicateBook(book_path(settings.data_dir))
    finder = DuplicateFinder(store, book)
    found = finder.check_new(new_ids + sorted(collapsed)) if book.exists else finder.check_all()
    book.save()
    return found


def _remember_paths(settings: Settings, store: VectorStore, collapsed: dict[str, list[Path]]) -> None:
    """Add each collapsed file's path to its point's `other_paths` (files since gone are dropped)."""
    ids = sorted(collapsed)
    for start in range(0, len(ids), 256):
        for point in store.retrieve(IMAGES, ids[start : start + 256]):
            payload = ImagePayload.from_stored(point.payload)
            added = [stored_path(p, settings.images_dir) for p in collapsed[point.id]]
            paths = [
                p
                for p in dict.fromkeys([*payload.other_paths, *added])
                if p != payload.path and library_file(p, settings.images_dir).is_file()
            ]
            if paths != list(payload.other_paths):
                store.set_payload(IMAGES, point.id, other_paths_fields(paths))
