"""What the backup and re-index tests share: a generated photo library, and the answers a user would get."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.model import ClipModel
from core.settings import Settings
from core.store import IMAGES, VectorStore
from search import SearchService
from search.query import Filters, PageRequest, Query, StoredTerm, TextTerm
from tests.image_factory import jpeg_bytes, photo, write

QUERIES = ("a waterfall in a forest", "red rocks at sunset", "a photo", "snow on a mountain")
FOLDERS = ("north", "south", "east")


def make_library(images: Path, count: int, seed: int = 500) -> list[Path]:
    """`count` distinct generated photos in three folders."""
    return [
        write(images / FOLDERS[i % len(FOLDERS)] / f"photo_{i}.jpg", jpeg_bytes(photo(seed + i, (160, 120))))
        for i in range(count)
    ]


def answers(settings: Settings, encoder: ClipModel, store: VectorStore) -> list[Any]:
    """Text searches (one with a class filter, one on page 2), "more like this" for three photos, the classes
    and the stats: ids, scores (to 5 decimals), labels and payload fields, as a user sees them."""
    service = SearchService(settings, encoder=encoder, store=store)
    service.prepare()
    seen: list[Any] = []

    def page(query: Query) -> list[Any]:
        found = service.search(query)
        return [(r.id, round(r.score, 5), r.label.id, r.confidence, r.width, r.height) for r in found.results]

    for text in QUERIES:
        seen.append(page(Query(TextTerm(text), page=PageRequest(k=6))))
    seen.append(page(Query(TextTerm(QUERIES[0]), page=PageRequest(k=3, offset=3))))
    first_class = service.classifier().classes[0].id
    seen.append(page(Query(TextTerm(QUERIES[1]), Filters(label=first_class), PageRequest(k=5))))
    ids = sorted(p.id for p in store.scroll(IMAGES))
    for point_id in ids[:3]:
        seen.append(page(Query(StoredTerm(point_id), page=PageRequest(k=4))))
        record = service.image(point_id)
        seen.append((record.id, record.label.id, record.width, record.height))
    seen.append([(c.id, c.count) for c in service.classes()])
    stats = service.stats()
    seen.append((stats.points, stats.model, stats.dim, stats.classes, stats.crosscheck))
    return seen
