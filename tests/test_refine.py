"""Search with examples and diverse results, through the search layer on both store backends, and over HTTP.

The combination rule (`search/refine.py`) is checked against a brute-force dot product over every stored
vector; the same library is ingested into the embedded store and into the server store (qdrant-client's
local mode), and both must give that answer.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from qdrant_client import QdrantClient

from core.model import ClipModel
from core.settings import Settings
from core.store import IMAGES, VectorStore
from core.store.embedded import EmbeddedStore
from core.store.server import ServerStore
from ingest.pipeline import run_ingest
from search import Filters, PageRequest, Query, SearchService, StoredTerm, TextTerm, UploadTerm
from search.errors import BadQuery, TooManyExamples, UnknownImage
from search.query import Example
from search.refine import combine
from tests.api_helpers import ApiLibrary, assert_error, point_id_of
from tests.image_factory import jpeg_bytes, photo

pytest_plugins = ["tests.api_helpers"]
pytestmark = [
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant"),
    pytest.mark.filterwarnings("ignore:Local mode performs exact"),
    pytest.mark.filterwarnings("ignore:Failed to obtain server version"),
]

SIZE = 16
# Near-identical copies of photo 0 (re-encoded), which a diverse answer must not show twice.
COPIES = 3


def _library(folder: Path) -> None:
    folder.mkdir(parents=True)
    for i in range(SIZE):
        (folder / f"p{i:02d}.jpg").write_bytes(jpeg_bytes(photo(500 + i)))
    for q in range(COPIES):
        out = io.BytesIO()
        photo(500).save(out, "JPEG", quality=70 + 5 * q)
        (folder / f"copy{q}.jpg").write_bytes(out.getvalue())


@pytest.fixture(scope="module", params=["embedded", "server"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, encoder: ClipModel
) -> Iterator[tuple[SearchService, dict[str, np.ndarray]]]:
    """A ready service over the same small library in each store, and every stored vector by id."""
    root = tmp_path_factory.mktemp(f"refine-{request.param}")
    _library(root / "images")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        clip_model=encoder.model_name,
        clip_device="cpu",
        clip_precision="fp32",
        images_dir=root / "images",
        data_dir=root / "data",
        qdrant_url=None,
    )
    store: VectorStore = (
        EmbeddedStore(settings.shard_dir)
        if request.param == "embedded"
        else ServerStore(url="local", client=QdrantClient(":memory:"))
    )
    run_ingest(settings, encoder, store, show_progress=False)
    vectors = {p.id: np.asarray(p.vector) for p in store.scroll(IMAGES, with_vectors=True)}
    yield SearchService(settings, encoder, store), vectors
    store.close()


def brute_force(vectors: dict[str, np.ndarray], query: np.ndarray, exclude: set[str]) -> list[str]:
    """Every stored id by cosine with `query`, best first (ties by id)."""
    scored = sorted((-float(v @ query), i) for i, v in vectors.items() if i not in exclude)
    return [i for _, i in scored]


def _ids(service: SearchService, query: Query) -> list[str]:
    return [r.id for r in service.search(query).results]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_text_minus_text_is_the_brute_force_answer(backend: Any) -> None:
    service, vectors = backend
    query = Query(
        TextTerm("towers"), page=PageRequest(k=8), examples=(Example(TextTerm("skyscrapers"), negative=True),)
    )
    encoder = service.encoder
    towers, skyscrapers = encoder.text.encode_texts(["towers", "skyscrapers"])
    expected = brute_force(vectors, _unit(_unit(towers) - _unit(skyscrapers)), set())
    assert _ids(service, query) == expected[:8]
    # ...and it differs from "towers" alone: the negative moved the answer.
    assert _ids(service, Query(TextTerm("towers"), page=PageRequest(k=8))) != expected[:8]


def test_photo_and_words_weighted_with_stored_negatives(backend: Any) -> None:
    service, vectors = backend
    ids = sorted(vectors)
    upload = jpeg_bytes(photo(9000))
    query = Query(
        UploadTerm(upload),
        page=PageRequest(k=6, offset=2),
        examples=(
            Example(TextTerm("at night"), weight=0.5),
            Example(StoredTerm(ids[1]), weight=2.0),
            Example(StoredTerm(ids[2]), negative=True),
            Example(StoredTerm(ids[3]), weight=0.7, negative=True),
        ),
    )
    night = service.encoder.text.encode_texts(["at night"])[0]
    photo_vector = service.upload_vector(upload)
    combined = combine(
        [photo_vector, night, vectors[ids[1]], vectors[ids[2]], vectors[ids[3]]], [1, 0.5, 2, -1, -0.7]
    )
    manual = _unit(
        _unit(photo_vector)
        + 0.5 * _unit(night)
        + 2 * vectors[ids[1]]
        - vectors[ids[2]]
        - 0.7 * vectors[ids[3]]
    )
    np.testing.assert_allclose(combined, manual, atol=1e-5)
    expected = brute_force(vectors, manual, {ids[1], ids[2], ids[3]})  # the stored examples are left out
    page = service.search(query)
    assert [r.id for r in page.results] == expected[2:8]
    assert page.next_offset == 8
    scores = [r.score for r in page.results]
    np.testing.assert_allclose(scores, [float(vectors[i] @ manual) for i in expected[2:8]], atol=1e-4)


def test_class_filter_and_min_score_apply_to_the_combined_vector(backend: Any) -> None:
    service, vectors = backend
    ids = sorted(vectors)
    query = Query(
        StoredTerm(ids[0]),
        Filters(min_score=0.0),
        PageRequest(k=100),
        examples=(Example(TextTerm("a lake"), negative=True),),
    )
    lake = service.encoder.text.encode_texts(["a lake"])[0]
    combined = _unit(vectors[ids[0]] - _unit(lake))
    expected = [i for i in brute_force(vectors, combined, {ids[0]}) if vectors[i] @ combined >= 0.0]
    assert _ids(service, query) == expected


def test_refused_queries(backend: Any) -> None:
    service, vectors = backend
    some = sorted(vectors)[0]
    cancelling = Query(StoredTerm(some), examples=(Example(StoredTerm(some), negative=True),))
    with pytest.raises(BadQuery):
        service.search(cancelling)
    with pytest.raises(BadQuery):
        service.search(Query(TextTerm("x"), weight=0))
    many = tuple(Example(TextTerm(f"t{i}")) for i in range(16))
    with pytest.raises(TooManyExamples):
        service.search(Query(TextTerm("x"), examples=many))
    with pytest.raises(UnknownImage):
        service.search(Query(TextTerm("x"), examples=(Example(StoredTerm("0" * 32)),)))


def test_diverse_hides_the_near_identical_copies(backend: Any) -> None:
    service, _ = backend
    library = service.settings.images_dir

    original = point_id_of(library / "p00.jpg")
    copies = {point_id_of(library / f"copy{q}.jpg") for q in range(COPIES)}
    plain = _ids(service, Query(StoredTerm(original), page=PageRequest(k=6)))
    assert copies <= set(plain[:COPIES])  # without diversity the copies fill the top
    diverse = _ids(service, Query(StoredTerm(original), page=PageRequest(k=6), diverse=True))
    assert len(copies & set(diverse)) == 1  # one copy stands for them all
    assert len(diverse) == 6 and len(set(diverse)) == 6
    # A text search too shows one of the four files of that photo at most.
    same_photo = copies | {original}
    for text in ("a photo", "colourful shapes", "a lake"):
        found = _ids(service, Query(TextTerm(text), page=PageRequest(k=10), diverse=True))
        assert len(same_photo & set(found)) <= 1, text
        assert len(found) == 10
    # Pages of a diverse answer neither overlap nor skip.
    pages = [
        _ids(service, Query(StoredTerm(original), page=PageRequest(k=4, offset=o), diverse=True))
        for o in (0, 4, 8)
    ]
    whole = _ids(service, Query(StoredTerm(original), page=PageRequest(k=12), diverse=True))
    assert [i for page in pages for i in page] == whole


def test_queries_with_a_text_walk_the_wider_beam(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """HNSW_EF_TEXT for any query holding a text (across the modality gap), HNSW_EF for photos alone."""
    service, vectors = backend
    beams: list[int | None] = []
    real = service.store.query

    def spy(*args: Any, **kwargs: Any) -> Any:
        beams.append(kwargs.get("hnsw_ef"))
        return real(*args, **kwargs)

    monkeypatch.setattr(service.store, "query", spy)
    photo_id = sorted(vectors)[0]
    night = Example(TextTerm("at night"))
    answers = [
        service.search(Query(TextTerm("a tower"))),
        service.search(Query(StoredTerm(photo_id))),
        service.search(Query(StoredTerm(photo_id), examples=(night,))),
        service.search(Query(StoredTerm(photo_id), examples=(Example(TextTerm("at night"), negative=True),))),
        service.search(Query(TextTerm("a tower"), diverse=True)),
        service.search(Query(StoredTerm(photo_id), examples=(Example(StoredTerm(sorted(vectors)[1])),))),
    ]
    wide = service.settings.hnsw_ef_text
    assert wide > service.settings.hnsw_ef
    assert beams == [wide, None, wide, wide, wide, None]
    assert all(answer.results for answer in answers)  # each adapter took the beam and answered


def test_both_backends_agree(encoder: ClipModel, tmp_path: Path) -> None:
    answers = []
    for kind in ("embedded", "server"):
        root = tmp_path / kind
        _library(root / "images")
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            clip_model=encoder.model_name,
            clip_device="cpu",
            clip_precision="fp32",
            images_dir=root / "images",
            data_dir=root / "data",
            qdrant_url=None,
        )
        store: VectorStore = (
            EmbeddedStore(settings.shard_dir)
            if kind == "embedded"
            else ServerStore(url="local", client=QdrantClient(":memory:"))
        )
        run_ingest(settings, encoder, store, show_progress=False)
        service = SearchService(settings, encoder, store)
        query = Query(
            TextTerm("towers"),
            page=PageRequest(k=10),
            diverse=True,
            examples=(Example(TextTerm("skyscrapers"), negative=True),),
        )
        answers.append(_ids(service, query))
        store.close()
    assert answers[0] == answers[1]


# -- over HTTP -----------------------------------------------------------------------------------------


def test_post_query_json(client: FlaskClient, api_library: ApiLibrary) -> None:
    ids = list(api_library.ids.values())
    body = {
        "positive": [{"text": "towers"}, {"id": ids[0], "weight": 2}],
        "negative": [{"text": "skyscrapers"}, {"id": ids[1]}],
        "k": 5,
        "diverse": True,
    }
    response = client.post("/api/query", json=body)
    assert response.status_code == 200, response.json
    found = [r["id"] for r in response.json["results"]]
    assert len(found) == 5 and ids[0] not in found and ids[1] not in found
    again = client.post("/api/query", json={**body, "offset": 5}).json
    assert not {r["id"] for r in again["results"]} & set(found)


def test_post_query_multipart_photo_and_words(client: FlaskClient, api_library: ApiLibrary) -> None:
    query = {"positive": [{"upload": "photo"}, {"text": "at night"}], "k": 4}
    data = {"query": json.dumps(query), "photo": (io.BytesIO(jpeg_bytes(photo(77))), "p.jpg")}
    response = client.post("/api/query", data=data, content_type="multipart/form-data")
    assert response.status_code == 200, response.json
    assert len(response.json["results"]) == 4
    alone = client.post(
        "/api/query",
        data={
            "query": json.dumps({"positive": [{"upload": "photo"}], "k": 4}),
            "photo": (io.BytesIO(jpeg_bytes(photo(77))), "p.jpg"),
        },
        content_type="multipart/form-data",
    ).json
    assert [r["score"] for r in alone["results"]] != [r["score"] for r in response.json["results"]]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid_parameter"),
        ({"positive": []}, 400, "invalid_parameter"),
        ({"positive": [{"text": "a", "id": "b"}]}, 400, "invalid_parameter"),
        ({"positive": [{"text": "a", "weight": 0}]}, 400, "invalid_parameter"),
        ({"positive": [{"upload": "nothing"}]}, 400, "invalid_parameter"),
        ({"positive": [{"text": "a"}], "negative": [{"text": "a"}]}, 400, "bad_query"),
        ({"positive": [{"text": "   "}]}, 400, "empty_query"),
        ({"positive": [{"id": "not-an-id"}]}, 404, "not_found"),
        ({"positive": [{"text": "a"}], "class": "nope"}, 400, "unknown_class"),
        ([1, 2], 400, "invalid_parameter"),
    ],
)
def test_post_query_errors(client: FlaskClient, body: Any, status: int, code: str) -> None:
    assert_error(client.post("/api/query", json=body), status, code)


def test_post_query_is_documented(client: FlaskClient) -> None:
    operation = client.get("/api/openapi.json").json["paths"]["/api/query"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "multipart/form-data"}


def test_diverse_on_every_search_kind(client: FlaskClient, api_library: ApiLibrary) -> None:
    some = next(iter(api_library.ids.values()))
    for url in ("/api/search?q=a&diverse=true", f"/api/images/{some}/similar?diverse=true"):
        response = client.get(url)
        assert response.status_code == 200, (url, response.json)
    upload = {"image": (io.BytesIO(jpeg_bytes(photo(3))), "p.jpg")}
    response = client.post("/api/search/image?diverse=true", data=upload, content_type="multipart/form-data")
    assert response.status_code == 200
