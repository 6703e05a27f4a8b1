"""Cells (core/cells.py, search/cells.py): a text query also searches the cells nearest to it.

On both store backends: training gives every photo its nearest centroid and stores the centroids last; a
text query is the HNSW walk merged with its cells, so a photo the walk missed is still found, and pages
neither overlap nor skip. Then the lifecycle: a training killed halfway leaves no cells (search answers
from the walk alone), ingest assigns new photos and trains by itself past CELLS_MIN_PHOTOS, `make cells`
(the CLI) and its hand-off to the running service, and cells of another model are never used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

import core.cells
import ingest.pipeline
from api import create_app
from api.routes.admin import write_admin_token
from core.cells import Cells, needs_training, train_cells
from core.model import ClipModel
from core.settings import Settings
from core.store import CELL_FIELD, CELLS, IMAGES, Hit, StoreUnavailable, VectorStore
from core.store.embedded import EmbeddedStore
from core.store.server import ServerStore
from ingest.handoff import TOKEN_HEADER
from ingest.pipeline import run_ingest
from ops import cells as cells_cli
from search import PageRequest, Query, SearchService, StoredTerm, TextTerm
from search.cells import StoredCells
from tests.image_factory import jpeg_bytes, photo, write
from tests.ops_helpers import make_library

pytestmark = [
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant"),
    pytest.mark.filterwarnings("ignore:Local mode performs exact"),
    pytest.mark.filterwarnings("ignore:Failed to obtain server version"),
]

COUNT = 80  # enough to train 2 cells (39 photos a cell at least)
TEXTS = ("a waterfall in a forest", "red rocks at sunset", "snow on a mountain", "a photo")


def _settings(root: Path, encoder: ClipModel, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "clip_model": encoder.model_name,
        "clip_device": "cpu",
        "clip_precision": "fp32",
        "images_dir": root / "images",
        "data_dir": root / "data",
        "qdrant_url": None,
        "cells_min_photos": 0,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@pytest.fixture(scope="module", params=["embedded", "server"])
def trained(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, encoder: ClipModel
) -> Iterator[tuple[Settings, VectorStore]]:
    """COUNT photos ingested into each store, and 2 cells trained on them."""
    root = tmp_path_factory.mktemp(f"cells-{request.param}")
    settings = _settings(root, encoder, text_cells_probe=2)
    make_library(settings.images_dir, COUNT)
    store: VectorStore = (
        EmbeddedStore(settings.shard_dir)
        if request.param == "embedded"
        else ServerStore(url="local", client=QdrantClient(":memory:"))
    )
    run_ingest(settings, encoder, store, show_progress=False)
    train_cells(store, cells=2)
    yield settings, store
    store.close()


def _vectors(store: VectorStore) -> dict[str, np.ndarray]:
    return {p.id: np.asarray(p.vector) for p in store.scroll(IMAGES, with_vectors=True)}


def _ids(service: SearchService, query: Query) -> list[str]:
    return [r.id for r in service.search(query).results]


def _brute_force(vectors: dict[str, np.ndarray], query: np.ndarray) -> list[str]:
    return [i for _, i in sorted((-float(v @ query), i) for i, v in vectors.items())]


def test_training_gives_every_photo_its_nearest_cell(trained: tuple[Settings, VectorStore]) -> None:
    _, store = trained
    cells = Cells.load(store)
    assert cells is not None and cells.count == 2
    assert cells.meta["photos"] == COUNT and cells.meta["cells"] == 2
    np.testing.assert_allclose(np.linalg.norm(cells.centroids, axis=1), 1.0, atol=1e-5)
    points = list(store.scroll(IMAGES, with_vectors=True))
    vectors = np.stack([np.asarray(p.vector) for p in points])
    assert [p.payload[CELL_FIELD] for p in points] == cells.assign(vectors).tolist()
    assert len(set(cells.assign(vectors).tolist())) == 2  # both cells hold photos
    # The probe ranks the cells by the query, nearest first.
    query = vectors[0]
    assert cells.probe(query, 5) == np.argsort(-(cells.centroids @ query)).tolist()
    assert cells.probe(query, 1) == [int(np.argmax(cells.centroids @ query))]


class MissedByTheWalk:
    """The real store, except that a walk (a query not restricted to cells) never finds `hidden`: what
    a walk trapped in the wrong part of the graph does to a text query in a big library."""

    def __init__(self, inner: VectorStore, hidden: str) -> None:
        self._inner = inner
        self.hidden = hidden
        self.probed: list[list[int] | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def query(self, name: str, vector: np.ndarray, limit: int, **kwargs: Any) -> list[Hit]:
        cells = kwargs.get("cells")
        if name == IMAGES:
            self.probed.append(None if cells is None else list(cells))
        hits = self._inner.query(name, vector, limit, **kwargs)
        return hits if cells is not None else [h for h in hits if h.id != self.hidden]


@pytest.mark.parametrize("probe", [2, 0])
def test_a_text_query_finds_the_photo_its_walk_missed(
    trained: tuple[Settings, VectorStore], encoder: ClipModel, probe: int
) -> None:
    settings, store = trained
    vectors = _vectors(store)
    service = SearchService(settings.model_copy(update={"text_cells_probe": probe}), encoder, store)
    text = TEXTS[0]
    expected = _brute_force(vectors, service.text_vector(text))[:8]
    missing = MissedByTheWalk(store, hidden=expected[0])
    service.store = missing  # type: ignore[assignment]
    found = _ids(service, Query(TextTerm(text), page=PageRequest(k=8)))
    if probe:  # both cells: the merged answer is the exhaustive one, the missed photo first
        assert found == expected
        assert len(missing.probed) == 2 and missing.probed[0] is None  # the walk, then the cells
        assert sorted(missing.probed[1] or []) == [0, 1]
    else:  # the walk alone: the photo stays missing (what this test would see without cells)
        assert expected[0] not in found and found == expected[1:] + found[7:]
        assert missing.probed == [None]


def test_only_queries_with_a_text_probe_cells(
    trained: tuple[Settings, VectorStore], encoder: ClipModel
) -> None:
    settings, store = trained
    spy = MissedByTheWalk(store, hidden="")
    service = SearchService(settings.model_copy(update={"text_cells_probe": 1}), encoder, spy)  # type: ignore[arg-type]
    photo_id = sorted(_vectors(store))[0]
    service.search(Query(StoredTerm(photo_id)))
    assert spy.probed == [None]  # a photo query walks only: photos find their neighbours at any beam
    spy.probed.clear()
    for query in (Query(TextTerm(TEXTS[1])), Query(TextTerm(TEXTS[1]), diverse=True)):
        service.search(query)
    assert [p is None for p in spy.probed] == [True, False, True, False]
    assert all(p is None or len(p) == 1 for p in spy.probed)


def test_pages_of_a_probed_text_search_neither_overlap_nor_skip(
    trained: tuple[Settings, VectorStore], encoder: ClipModel
) -> None:
    settings, store = trained
    service = SearchService(settings, encoder, store)
    text = TEXTS[2]
    expected = _brute_force(_vectors(store), service.text_vector(text))[:15]
    # The walk misses the 7th: on the second page, only the cells' search finds it.
    service.store = MissedByTheWalk(store, hidden=expected[6])  # type: ignore[assignment]
    pages = [_ids(service, Query(TextTerm(text), page=PageRequest(k=5, offset=o))) for o in (0, 5, 10)]
    whole = _ids(service, Query(TextTerm(text), page=PageRequest(k=15)))
    assert [i for page in pages for i in page] == whole == expected


def test_cells_of_another_model_are_not_used(trained: tuple[Settings, VectorStore]) -> None:
    _, store = trained
    cells = Cells.load(store)
    assert cells is not None
    images_meta = store.collection_meta(IMAGES)
    assert images_meta is not None
    try:
        Cells(cells.centroids, {}).save(store, {**images_meta, "model": "another-clip"}, COUNT)
        assert Cells.load(store) is None
        assert needs_training(store, min_photos=COUNT)  # so a big library trains its own
    finally:
        cells.save(store, images_meta, COUNT)
    assert Cells.load(store) is not None


def test_when_ingest_should_train(trained: tuple[Settings, VectorStore]) -> None:
    _, store = trained
    cells = Cells.load(store)
    images_meta = store.collection_meta(IMAGES)
    assert cells is not None and images_meta is not None
    assert not needs_training(store, min_photos=0)  # 0: only `make cells`
    assert not needs_training(store, min_photos=COUNT + 1)  # too few photos yet
    assert not needs_training(store, min_photos=COUNT)  # trained on all of today's photos
    try:
        cells.save(store, images_meta, photos=COUNT // 2)
        assert needs_training(store, min_photos=COUNT)  # the library doubled since
    finally:
        cells.save(store, images_meta, COUNT)


def test_a_training_killed_halfway_leaves_no_cells(
    trained: tuple[Settings, VectorStore], encoder: ClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, store = trained
    service = SearchService(settings, encoder, store)
    service.stored_cells.CHECK_S = 0.0  # type: ignore[misc]
    before = _ids(service, Query(TextTerm(TEXTS[3])))
    monkeypatch.setattr(core.cells, "ASSIGN_CHUNK", 30)

    def killed(phase: str, done: int, total: int) -> None:
        if phase == "assigning":
            raise KeyboardInterrupt("killed after the first chunk")

    try:
        with pytest.raises(KeyboardInterrupt):
            train_cells(store, cells=2, progress=killed)
        assert store.collection_meta(CELLS) is None and Cells.load(store) is None
        assert service.stored_cells.current(store) is None
        assert _ids(service, Query(TextTerm(TEXTS[3]))) == before  # the walk alone, still right here
    finally:
        report = train_cells(store, cells=2)  # the next run starts again and completes
    assert report.photos == COUNT and report.cells == 2 and "2 trained" in report.summary()
    assert service.stored_cells.current(store) is not None


def test_too_few_photos_or_none_are_refused(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "qdrant")
    try:
        with pytest.raises(core.cells.CollectionMissing):
            train_cells(store)
        store.ensure_collection(IMAGES, {"model": "m", "dim": 4, "image_size": 32})
        with pytest.raises(ValueError, match="at least 78 photos"):
            train_cells(store, cells=2)
        assert store.collection_meta(CELLS) is None
        assert not needs_training(store, min_photos=1)  # ingest never asks for what cannot be trained
    finally:
        store.close()


class CellsBeingWritten:
    """The real store, while a training writes the centroids: the meta is there, the points not all yet,
    or the whole collection is dropped in the middle of a read."""

    def __init__(self, inner: VectorStore) -> None:
        self._inner = inner
        self.centroids_shown = 1  # of the stored ones
        self.dropped = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def scroll(self, name: str, with_vectors: bool = False, batch: int = 256) -> Iterator[Any]:
        if name == CELLS and self.dropped:
            raise core.cells.CollectionMissing("dropped by a training")
        points = list(self._inner.scroll(name, with_vectors, batch))
        return iter(points[: self.centroids_shown] if name == CELLS else points)


def test_the_service_reads_cells_again_once_they_are_written_whole(
    trained: tuple[Settings, VectorStore],
) -> None:
    _, store = trained
    cells = StoredCells()
    cells.CHECK_S = 0.0  # type: ignore[misc]
    writing = CellsBeingWritten(store)
    assert cells.current(writing) is None  # 1 of 2 centroids: as good as none
    writing.centroids_shown = 2
    found = cells.current(writing)  # the same meta as before, read again all the same
    assert found is not None and found.count == 2
    writing.dropped = True
    cells.forget()
    assert cells.current(writing) is None  # dropped while read: the walk alone, not an error


def test_a_failed_training_leaves_the_ingest_whole(
    tmp_path: Path, encoder: ClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("the store went away")

    monkeypatch.setattr(ingest.pipeline, "train_cells", unavailable)
    settings = _settings(tmp_path, encoder, cells_min_photos=40)
    make_library(settings.images_dir, 40)
    store = EmbeddedStore(settings.shard_dir)
    try:
        report = run_ingest(settings, encoder, store, show_progress=False)
        assert report.new == 40 and report.cells == 0 and report.total_points == 40
        assert store.stats(IMAGES).points == 40
    finally:
        store.close()


def test_ingest_assigns_new_photos_and_trains_past_the_threshold(
    tmp_path: Path, encoder: ClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core.cells, "PHOTOS_PER_CELL", 20)  # 4 cells for 80 photos
    monkeypatch.setattr(core.cells, "MIN_SAMPLE_PER_CELL", 10)
    settings = _settings(tmp_path, encoder, cells_min_photos=COUNT)
    store = EmbeddedStore(settings.shard_dir)
    try:
        make_library(settings.images_dir, COUNT - 1)
        report = run_ingest(settings, encoder, store, show_progress=False)
        assert report.cells == 0 and Cells.load(store) is None  # below CELLS_MIN_PHOTOS
        assert all(CELL_FIELD not in p.payload for p in store.scroll(IMAGES))

        write(settings.images_dir / "more" / "a.jpg", jpeg_bytes(photo(9001, (160, 120))))
        report = run_ingest(settings, encoder, store, show_progress=False)
        assert report.cells == 4 and "cells trained: 4" in report.summary()
        assert report.as_dict()["cells"] == 4
        cells = Cells.load(store)
        assert cells is not None and cells.meta["photos"] == COUNT

        write(settings.images_dir / "more" / "b.jpg", jpeg_bytes(photo(9002, (160, 120))))
        report = run_ingest(settings, encoder, store, show_progress=False)
        assert report.cells == 0  # not retrained: the library has not doubled
        points = list(store.scroll(IMAGES, with_vectors=True))
        assert len(points) == COUNT + 1
        vectors = np.stack([np.asarray(p.vector) for p in points])
        assert [p.payload[CELL_FIELD] for p in points] == cells.assign(vectors).tolist()  # the new one too

        report = run_ingest(settings, encoder, store, recreate=True, show_progress=False)
        assert report.cells == 4  # the old centroids went with the old photos; trained anew
    finally:
        store.close()


def test_make_cells_trains_and_says_what_it_did(
    tmp_path: Path, encoder: ClipModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path, encoder)
    for name, value in {
        "CLIP_MODEL": settings.clip_model,
        "IMAGES_DIR": str(settings.images_dir),
        "DATA_DIR": str(settings.data_dir),
        "QDRANT_URL": "",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("QDRANT_URL")
    assert cells_cli.main(["--no-handoff", "--quiet"]) == 1
    assert "run `make ingest` first" in capsys.readouterr().err

    make_library(settings.images_dir, COUNT)
    store = EmbeddedStore(settings.shard_dir)
    run_ingest(settings, encoder, store, show_progress=False)
    store.close()
    assert cells_cli.main(["--cells", "3", "--no-handoff", "--quiet"]) == 1
    assert "3 cells need at least 117 photos" in capsys.readouterr().err
    assert cells_cli.main(["--cells", "0"]) == 2
    assert cells_cli.main(["--cells", "2", "--no-handoff"]) == 0
    out = capsys.readouterr()
    assert "cells: 2 trained on 80 of 80 photos" in out.out and f"assigning: {COUNT}/{COUNT}" in out.err
    store = EmbeddedStore(settings.shard_dir)
    try:
        cells = Cells.load(store)
        assert cells is not None and cells.count == 2
    finally:
        store.close()


def test_the_running_service_trains_the_cells_handed_to_it(tmp_path: Path, encoder: ClipModel) -> None:
    settings = _settings(tmp_path, encoder)
    make_library(settings.images_dir, COUNT)
    store = EmbeddedStore(settings.shard_dir)
    try:
        run_ingest(settings, encoder, store, show_progress=False)
        app = create_app(settings, encoder, store)
        app.config["WONDERS_ADMIN_TOKEN"] = write_admin_token(settings.data_dir)
        headers = {TOKEN_HEADER: app.config["WONDERS_ADMIN_TOKEN"]}
        client = app.test_client()
        wonders = app.extensions["wonders"]
        assert wonders.stored_cells.current(store) is None
        assert client.post("/api/admin/cells", json={"cells": 0}, headers=headers).status_code == 400
        assert client.post("/api/admin/cells", json={"cells": 2}).status_code in (401, 403)
        started = client.post("/api/admin/cells", json={"cells": 2}, headers=headers)
        assert started.status_code == 202, started.get_data()
        app.extensions["wonders_ops"].wait(120)
        final = client.get("/api/admin/cells", headers=headers).get_json()
        assert final["state"] == "done" and "cells: 2 trained" in final["summary"], final
        assert wonders.stored_cells.current(store) is not None  # used at once, no restart
        assert client.get("/api/search", query_string={"q": TEXTS[0]}).status_code == 200
    finally:
        store.close()
