"""Near-duplicates, as a user meets them: ingest a library with planted copies, read GET /api/duplicates.

The library holds real sample photos nobody here made (scikit-image, scikit-learn) and generated ones,
each with re-encoded, resized, centre-cropped and recoloured copies planted beside it, a byte-identical
copy in another folder, and the two views of a stereo pair (the same scene: similar, not a duplicate).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image, ImageEnhance

from api.factory import create_app
from core.model import ClipModel
from core.settings import Settings
from core.store import VectorStore, open_store
from devtools.sample_photos import cropped, jpeg, resized, sample_photos, stereo_pair
from ingest.pipeline import run_ingest
from search.duplicates import MAX_BITS, DuplicateBook, DuplicateFinder, book_path
from tests.api_helpers import assert_error, point_id_of
from tests.image_factory import photo

pytest_plugins = ["tests.api_helpers"]

ORIGINALS = ("astronaut", "coffee", "chelsea", "rocket", "china", "flower", "coins", "retina")
EDITS = {
    "q40": lambda i: jpeg(i, 40),
    "half": lambda i: resized(i, 0.5),
    "crop7": lambda i: cropped(i, 0.07, 0.07, 0.07, 0.07),
    "bright": lambda i: ImageEnhance.Brightness(i).enhance(1.15),
}


def _save(image: Image.Image, path: Path, quality: int = 92) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    path.write_bytes(out.getvalue())


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, encoder: ClipModel) -> Iterator[dict[str, Any]]:
    """The ingested library, its settings and store, and which file is a copy of which."""
    root = tmp_path_factory.mktemp("dups")
    images = root / "images"
    photos = sample_photos()
    planted: dict[str, list[str]] = {}
    for name in ORIGINALS:
        _save(photos[name], images / "originals" / f"{name}.jpg")
        planted[f"originals/{name}.jpg"] = []
        for edit, make in EDITS.items():
            _save(make(photos[name]), images / "copies" / f"{name}_{edit}.jpg")
            planted[f"originals/{name}.jpg"].append(f"copies/{name}_{edit}.jpg")
    for seed in range(4):  # generated photos, each with one re-encoded copy
        _save(photo(7000 + seed, (400, 300)), images / "generated" / f"g{seed}.jpg")
        _save(photo(7000 + seed, (400, 300)), images / "generated" / f"g{seed}_q50.jpg", quality=50)
        planted[f"generated/g{seed}.jpg"] = [f"generated/g{seed}_q50.jpg"]
    left, right = stereo_pair()
    _save(left, images / "scene" / "left.jpg")
    _save(right, images / "scene" / "right.jpg")
    for name in ("moon", "camera"):  # distinct photos with no copy
        _save(photos[name], images / "single" / f"{name}.jpg")
    identical = images / "backup" / "astronaut.jpg"
    identical.parent.mkdir(parents=True)
    identical.write_bytes((images / "originals" / "astronaut.jpg").read_bytes())

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        clip_model=encoder.model_name,
        clip_device="cpu",
        clip_precision="fp32",
        images_dir=images,
        data_dir=root / "data",
        qdrant_url=None,
    )
    store = open_store(settings)
    report = run_ingest(settings, encoder, store, show_progress=False)
    yield {"settings": settings, "store": store, "planted": planted, "report": report, "images": images}
    store.close()


@pytest.fixture
def app(library: dict[str, Any], encoder: ClipModel) -> Flask:
    return create_app(library["settings"], encoder, library["store"])


def _all_groups(client: Any, k: int = 3) -> list[dict[str, Any]]:
    groups, offset = [], 0
    while offset is not None:
        page = client.get(f"/api/duplicates?k={k}&offset={offset}").json
        groups += page["groups"]
        offset = page["next_offset"]
    return groups


def test_every_planted_copy_is_in_its_originals_group_and_nothing_else_is(
    app: Flask, library: dict[str, Any]
) -> None:
    groups = _all_groups(app.test_client())
    near = {g["id"]: g for g in groups if g["kind"] == "near"}
    images = library["images"]
    paths_by_group = {rep: {f["path"] for f in g["files"]} for rep, g in near.items()}
    for original, copies in library["planted"].items():
        rep = next(r for r, paths in paths_by_group.items() if original in paths)
        assert set(copies) <= paths_by_group[rep], (original, paths_by_group[rep])
    grouped = [p for paths in paths_by_group.values() for p in paths]
    assert len(grouped) == len(set(grouped))  # no file in two groups
    expected = {p for original, copies in library["planted"].items() for p in (original, *copies)}
    expected.add("backup/astronaut.jpg")  # the byte-identical copy travels with its point
    assert set(grouped) == expected  # the stereo pair and the single photos are in no group
    assert library["report"].near_duplicates == sum(len(c) for c in library["planted"].values())
    assert point_id_of(images / "scene" / "left.jpg") not in near


def test_groups_are_stars_with_sizes_and_the_largest_marked(app: Flask) -> None:
    for group in _all_groups(app.test_client()):
        files = group["files"]
        assert files[0]["representative"] and files[0]["id"] == group["id"]
        assert sum(f["representative"] for f in files) == 1
        for f in files:  # every member is near the representative itself: no chaining
            assert f["distance"] is not None and f["distance"] <= MAX_BITS
            assert f["bytes"] > 0 and f["width"] and f["thumb_url"].endswith("/thumb")
        largest = [f for f in files if f["largest"]]
        assert len(largest) == 1 and largest[0]["bytes"] == max(f["bytes"] for f in files)


def test_byte_identical_files_are_listed_with_every_path(app: Flask, library: dict[str, Any]) -> None:
    astronaut = point_id_of(library["images"] / "originals" / "astronaut.jpg")
    group = next(g for g in _all_groups(app.test_client()) if astronaut in {f["id"] for f in g["files"]})
    same = [f for f in group["files"] if f["id"] == astronaut]
    assert {f["path"] for f in same} == {"originals/astronaut.jpg", "backup/astronaut.jpg"}


def test_pages_neither_overlap_nor_skip(app: Flask) -> None:
    client = app.test_client()
    whole = client.get("/api/duplicates?k=50").json
    assert whole["next_offset"] is None and whole["total"] == len(whole["groups"])
    paged = _all_groups(client, k=2)
    assert [g["id"] for g in paged] == [g["id"] for g in whole["groups"]]
    assert_error(client.get("/api/duplicates?k=0"), 400)


def test_a_new_copy_is_found_at_ingest(library: dict[str, Any], encoder: ClipModel, tmp_path: Path) -> None:
    images, settings, store = library["images"], library["settings"], library["store"]
    _save(resized(sample_photos()["chelsea"], 0.7), images / "later" / "chelsea_small.jpg", quality=80)
    report = run_ingest(settings, encoder, store, show_progress=False)
    assert report.new == 1 and report.near_duplicates == 1
    assert "near-duplicates found: 1" in report.summary()
    book = DuplicateBook(book_path(settings.data_dir))
    new_id = point_id_of(images / "later" / "chelsea_small.jpg")
    assert book.rep_of[new_id] == book.rep_of.get(
        point_id_of(images / "originals" / "chelsea.jpg"), point_id_of(images / "originals" / "chelsea.jpg")
    )


def test_not_a_duplicate_is_remembered(app: Flask, library: dict[str, Any]) -> None:
    client = app.test_client()
    group = next(g for g in _all_groups(client) if g["kind"] == "near")
    member = next(f["id"] for f in group["files"] if f["id"] != group["id"])
    response = client.post(f"/api/duplicates/{group['id']}/not-duplicate", json={"id": member})
    assert response.status_code == 204
    after = next(g for g in _all_groups(client) if g["id"] == group["id"])
    assert member not in {f["id"] for f in after["files"]}
    assert_error(client.post(f"/api/duplicates/{group['id']}/not-duplicate", json={"id": member}), 404)
    # A full regroup of the library keeps the verdict.
    store: VectorStore = library["store"]
    book = DuplicateBook(book_path(library["settings"].data_dir))
    DuplicateFinder(store, book).check_all()
    assert book.rep_of.get(member) != group["id"]
