"""The search layer in-process, with no web framework: the verbs, their typed answers and their errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.register_assert_rewrite("tests.api_helpers")

from core.model import ClipModel  # noqa: E402
from search import Filters, PageRequest, Query, SearchService, StoredTerm, TextTerm, UploadTerm  # noqa: E402
from search.errors import (  # noqa: E402
    EmptyQuery,
    FileMissing,
    NotReady,
    StoreDown,
    UnknownClass,
    UnknownImage,
    UnsupportedUpload,
)
from tests.api_helpers import ApiLibrary, FlakyStore  # noqa: E402
from tests.image_factory import jpeg_bytes, photo  # noqa: E402

pytest_plugins = ["tests.api_helpers"]


@pytest.fixture
def wonders(api_library: ApiLibrary, encoder: ClipModel) -> SearchService:
    """A ready service over the session library."""
    return SearchService(api_library.settings, encoder, api_library.store)


def test_the_search_layer_imports_no_web_framework() -> None:
    code = (
        "import search, sys; bad = [m for m in ('flask', 'werkzeug', 'api') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_text_search_pages_in_order_without_overlap(wonders: SearchService) -> None:
    first = wonders.search(Query(TextTerm("a photo"), page=PageRequest(k=5)))
    second = wonders.search(Query(TextTerm("a photo"), page=PageRequest(k=5, offset=5)))
    assert len(first.results) == 5 and first.next_offset == 5
    assert not {r.id for r in first.results} & {r.id for r in second.results}
    scores = [r.score for r in first.results + second.results]
    assert scores == sorted(scores, reverse=True)
    assert first.took_ms >= 0


def test_the_last_page_has_no_next_offset(wonders: SearchService, api_library: ApiLibrary) -> None:
    total = len(api_library.ids)
    last = wonders.search(Query(TextTerm("x"), page=PageRequest(k=10, offset=total - 3)))
    assert len(last.results) == 3 and last.next_offset is None


def test_a_stored_photo_finds_others_like_it_but_never_itself(
    wonders: SearchService, api_library: ApiLibrary
) -> None:
    point_id = next(iter(api_library.ids.values()))
    page = wonders.search(Query(StoredTerm(point_id), page=PageRequest(k=30)))
    assert point_id not in {r.id for r in page.results}
    assert len(page.results) == len(api_library.ids) - 1


def test_an_uploaded_copy_of_a_stored_photo_is_its_own_best_match(
    wonders: SearchService, api_library: ApiLibrary
) -> None:
    relative, point_id = next(iter(api_library.ids.items()))
    data = (api_library.settings.images_dir / relative).read_bytes()
    page = wonders.search(Query(UploadTerm(data), page=PageRequest(k=1)))
    assert page.results[0].id == point_id
    assert page.results[0].score > 0.99


def test_the_class_filter_and_min_score_hold(wonders: SearchService) -> None:
    label = wonders.classifier().classes[0].id
    page = wonders.search(Query(TextTerm("a photo"), Filters(label=label), PageRequest(k=100)))
    assert all(r.label.id == label for r in page.results)
    unfiltered = wonders.search(Query(TextTerm("a photo"), page=PageRequest(k=100)))
    floor = unfiltered.results[len(unfiltered.results) // 2].score
    above = wonders.search(Query(TextTerm("a photo"), Filters(min_score=floor), PageRequest(k=100)))
    assert above.results and all(r.score >= floor for r in above.results)


def test_text_vectors_are_cached_and_whitespace_does_not_matter(wonders: SearchService) -> None:
    first = wonders.text_vector("eiffel   tower")
    misses = wonders.cache.misses
    second = wonders.text_vector(" eiffel tower ")
    assert wonders.cache.misses == misses and wonders.cache.hits >= 1
    assert np.array_equal(first, second)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (Query(TextTerm("   ")), EmptyQuery),
        (Query(TextTerm("x"), Filters(label="no_such_class")), UnknownClass),
        (Query(StoredTerm("not-an-id")), UnknownImage),
        (Query(StoredTerm("00000000-0000-0000-0000-000000000000")), UnknownImage),
        (Query(UploadTerm(b"not an image")), UnsupportedUpload),
    ],
)
def test_bad_queries_raise_the_search_layers_own_errors(
    wonders: SearchService, query: Query, error: type[Exception]
) -> None:
    with pytest.raises(error) as raised:
        wonders.search(query)
    assert raised.value.message and raised.value.code  # type: ignore[attr-defined]


def test_an_unknown_class_error_names_the_known_ones(wonders: SearchService) -> None:
    with pytest.raises(UnknownClass) as raised:
        wonders.check_class("nope")
    assert all(c.id in raised.value.message for c in wonders.classifier().classes)


def test_not_ready_until_loaded(api_library: ApiLibrary) -> None:
    waiting = SearchService(api_library.settings)
    with pytest.raises(NotReady) as raised:
        waiting.search(Query(TextTerm("x")))
    assert raised.value.code == "not_ready"
    assert waiting.readiness().ready is False


def test_a_store_outage_is_store_down(api_library: ApiLibrary, encoder: ClipModel) -> None:
    flaky = FlakyStore(api_library.store)
    wonders = SearchService(api_library.settings, encoder, flaky)  # type: ignore[arg-type]
    wonders.classifier()
    flaky.down = True
    with pytest.raises(StoreDown):
        wonders.search(Query(TextTerm("x")))
    with pytest.raises(StoreDown):
        wonders.stats()
    assert wonders.readiness().code == "store_unavailable"


def test_classify_answers_a_class_with_top3(wonders: SearchService) -> None:
    answer = wonders.classify(jpeg_bytes(photo(7, (300, 200))))
    assert answer.label.id in {c.id for c in wonders.classifier().classes}
    assert len(answer.top3) == 3 and answer.top3[0].id == answer.label.id
    assert 0 < answer.confidence <= 1


def test_image_metadata_and_files(wonders: SearchService, api_library: ApiLibrary) -> None:
    relative, point_id = next(iter(api_library.ids.items()))
    record = wonders.image(point_id.upper())  # any spelling of the UUID
    assert record.id == point_id and record.path == relative
    assert record.width == 320 and record.height == 240 and len(record.top3) == 3
    with wonders.image_file(point_id).handle as served:
        assert served.read() == (api_library.settings.images_dir / relative).read_bytes()
    with wonders.thumbnail(point_id).handle as thumb:
        assert thumb.read(3) == b"\xff\xd8\xff"  # a JPEG


def test_a_deleted_file_is_file_missing(api_library: ApiLibrary, encoder: ClipModel) -> None:
    point_id = next(iter(api_library.ids.values()))
    moved = api_library.settings_with(images_dir=api_library.root / "elsewhere")
    wonders = SearchService(moved, encoder, api_library.store)
    with pytest.raises(FileMissing):
        wonders.image_file(point_id)


def test_classes_and_stats(wonders: SearchService, api_library: ApiLibrary) -> None:
    classes = wonders.classes()
    assert sum(c.count for c in classes) == len(api_library.ids)
    stats = wonders.stats()
    assert stats.points == len(api_library.ids)
    assert stats.limits["default_k"] == 12 and stats.limits["max_k"] == 100
