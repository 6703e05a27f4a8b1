"""One contract, two adapters: every test here that takes `store` runs against the embedded store (Qdrant
Edge in a temporary folder) and the server store (qdrant-client's local mode, which speaks the server's
API), each plain and with int8 quantization (the embedded one then indexes at once, so its searches go
through the int8 copy with rescoring). Adapter-specific behaviour (the shard lock, an unreachable
server) is tested at the end; quantization's recall is in tests/test_store_scale.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from core.store.base import (
    CELL_FIELD,
    CollectionMismatch,
    CollectionMissing,
    PointRecord,
    StoreUnavailable,
    VectorStore,
)
from core.store.embedded import EmbeddedStore
from core.store.server import ServerStore
from core.store.tuning import StoreTuning

pytestmark = [
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant"),
    pytest.mark.filterwarnings("ignore:Local mode performs exact"),
    pytest.mark.filterwarnings("ignore:Failed to obtain server version"),
]

NAME = "images"
DIM = 8
META = {"model": "tiny-clip", "dim": DIM, "image_size": 32}
LABELS = ("a", "b", "c")
COUNT = 40


def point_id(i: int) -> str:
    """A deterministic UUID point id."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"point-{i}"))


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """n random unit float32 vectors."""
    raw = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


VECTORS = unit_vectors(COUNT)
IDS = [point_id(i) for i in range(COUNT)]


def records() -> list[PointRecord]:
    """COUNT points, labels a, b, c in turn."""
    return [
        PointRecord(
            id=IDS[i], vector=VECTORS[i], payload={"label": LABELS[i % 3], "n": i, "path": f"p/{i}.jpg"}
        )
        for i in range(COUNT)
    ]


def brute_force(
    query: np.ndarray, label: str | None = None, exclude: str | None = None
) -> list[tuple[str, float]]:
    """Every point by cosine, best first: the answer a store must give."""
    scores = VECTORS @ query
    order = np.argsort(-scores, kind="stable")
    return [
        (IDS[i], float(scores[i]))
        for i in order
        if (label is None or LABELS[i % 3] == label) and IDS[i] != exclude
    ]


INT8 = StoreTuning(quantization="int8", vectors_on_disk=True)


@pytest.fixture(params=["embedded", "server", "embedded-int8", "server-int8"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    """A store with no collections, of each adapter, plain and quantized."""
    kind, _, quantized = request.param.partition("-")
    tuning = INT8 if quantized else None
    if kind == "embedded":
        # With quantization, a 1 KB threshold makes optimize() build the int8 copy of these 40 points.
        threshold = 1 if quantized else 10000
        store: VectorStore = EmbeddedStore(
            tmp_path / "qdrant", indexing_threshold_kb=threshold, tuning=tuning
        )
    else:
        store = ServerStore(url="local", client=QdrantClient(":memory:"), tuning=tuning)
    yield store
    store.close()


@pytest.fixture
def store(empty_store: VectorStore) -> VectorStore:
    """A store whose `images` collection holds the COUNT test points (optimized when quantized)."""
    empty_store.ensure_collection(NAME, META)
    empty_store.upsert(NAME, records())
    if getattr(empty_store, "tuning", StoreTuning()).quantized:
        empty_store.optimize(NAME)
    return empty_store


# -- the contract -------------------------------------------------------------------------------------


def test_ensure_collection_records_and_checks_meta(empty_store: VectorStore) -> None:
    store = empty_store
    assert store.collection_meta(NAME) is None
    assert store.count(NAME) == 0
    assert list(store.scroll(NAME)) == []
    assert store.stats(NAME).points == 0
    store.ensure_collection(NAME, META)
    meta = store.collection_meta(NAME)
    assert meta is not None and meta["model"] == "tiny-clip" and meta["dim"] == DIM
    store.ensure_collection(NAME, META)  # the same model again: fine
    store.upsert(NAME, records()[:3])

    for other in ({**META, "model": "another-clip"}, {**META, "dim": 24}, {**META, "image_size": 224}):
        with pytest.raises(CollectionMismatch) as caught:
            store.ensure_collection(NAME, other)
        assert "--recreate" in str(caught.value)
        assert "tiny-clip" in str(caught.value)
    assert store.count(NAME) == 3  # a refused check changes nothing

    new_meta = {"model": "another-clip", "dim": 24, "image_size": 32}
    store.ensure_collection(NAME, new_meta, recreate=True)
    assert store.count(NAME) == 0
    assert store.collection_meta(NAME)["model"] == "another-clip"  # type: ignore[index]
    store.upsert(NAME, [PointRecord(id=IDS[0], vector=unit_vectors(1, 24)[0], payload={"label": "a"})])
    assert store.count(NAME) == 1
    with pytest.raises(CollectionMismatch):
        store.ensure_collection(NAME, META)


def test_collections_are_independent(empty_store: VectorStore) -> None:
    empty_store.ensure_collection(NAME, META)
    empty_store.ensure_collection("prompts", {**META, "dim": 4})
    empty_store.upsert(NAME, records()[:5])
    assert empty_store.count(NAME) == 5
    assert empty_store.count("prompts") == 0


def test_upsert_and_retrieve_round_trip(store: VectorStore) -> None:
    got = {p.id: p for p in store.retrieve(NAME, [IDS[3], IDS[7], point_id(999)], with_vectors=True)}
    assert set(got) == {IDS[3], IDS[7]}  # the unknown id is left out
    for i in (3, 7):
        assert got[IDS[i]].payload == {"label": LABELS[i % 3], "n": i, "path": f"p/{i}.jpg"}
        assert got[IDS[i]].vector is not None
        np.testing.assert_allclose(got[IDS[i]].vector, VECTORS[i], atol=1e-6)
    bare = store.retrieve(NAME, [IDS[3]])
    assert bare[0].vector is None and bare[0].payload["n"] == 3
    assert store.retrieve(NAME, []) == []

    # Upserting an existing id replaces it.
    store.upsert(NAME, [PointRecord(id=IDS[3], vector=VECTORS[4], payload={"label": "c", "n": 33})])
    again = store.retrieve(NAME, [IDS[3]], with_vectors=True)[0]
    assert again.payload == {"label": "c", "n": 33}
    np.testing.assert_allclose(again.vector, VECTORS[4], atol=1e-6)  # type: ignore[arg-type]
    assert store.count(NAME) == COUNT
    store.upsert(NAME, [])  # nothing to do is not an error


@pytest.mark.parametrize("exact", [False, True])
def test_query_is_best_first_and_right(store: VectorStore, exact: bool) -> None:
    query = unit_vectors(1, seed=7)[0]
    hits = store.query(NAME, query, limit=10, exact=exact)
    expected = brute_force(query)[:10]
    assert [h.id for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)
    assert all(a.score >= b.score for a, b in pairwise(hits))
    assert hits[0].payload["path"].startswith("p/")
    # A stored vector finds itself first, with cosine 1.
    itself = store.query(NAME, VECTORS[5], limit=1, exact=exact)[0]
    assert itself.id == IDS[5] and itself.score == pytest.approx(1.0, abs=1e-5)


def test_query_with_label_filter(store: VectorStore) -> None:
    query = unit_vectors(1, seed=8)[0]
    hits = store.query(NAME, query, limit=8, label="b")
    assert [h.id for h in hits] == [i for i, _ in brute_force(query, label="b")[:8]]
    assert {h.payload["label"] for h in hits} == {"b"}
    assert store.query(NAME, query, limit=5, label="no-such-class") == []


@pytest.mark.parametrize("label", [None, "a"])
def test_offset_pages_neither_overlap_nor_skip(store: VectorStore, label: str | None) -> None:
    query = unit_vectors(1, seed=9)[0]
    pages = [store.query(NAME, query, limit=4, offset=offset, label=label) for offset in range(0, 12, 4)]
    ids = [h.id for page in pages for h in page]
    assert len(ids) == len(set(ids)) == 12
    assert ids == [i for i, _ in brute_force(query, label=label)[:12]]
    # Past the end: what is left, then nothing.
    total = COUNT if label is None else len(brute_force(query, label=label))
    assert len(store.query(NAME, query, limit=10, offset=total - 3, label=label)) == 3
    assert store.query(NAME, query, limit=10, offset=total, label=label) == []


def test_min_score(store: VectorStore) -> None:
    query = unit_vectors(1, seed=10)[0]
    threshold = 0.3
    hits = store.query(NAME, query, limit=COUNT, min_score=threshold)
    expected = [i for i, s in brute_force(query) if s >= threshold]
    assert 0 < len(expected) < COUNT
    assert [h.id for h in hits] == expected
    assert all(h.score >= threshold for h in hits)
    assert store.query(NAME, query, limit=5, min_score=1.01) == []


def test_exclude_id(store: VectorStore) -> None:
    hits = store.query(NAME, VECTORS[2], limit=5, exclude_id=IDS[2])
    assert IDS[2] not in {h.id for h in hits}
    assert [h.id for h in hits] == [i for i, _ in brute_force(VECTORS[2], exclude=IDS[2])[:5]]


def test_similar_excludes_itself(store: VectorStore) -> None:
    hits = store.similar(NAME, IDS[6], limit=6)
    assert hits is not None
    assert [h.id for h in hits] == [i for i, _ in brute_force(VECTORS[6], exclude=IDS[6])[:6]]
    labelled = store.similar(NAME, IDS[6], limit=3, label="c")
    assert labelled is not None and {h.payload["label"] for h in labelled} == {"c"}
    assert IDS[6] not in {h.id for h in labelled}
    page2 = store.similar(NAME, IDS[6], limit=3, offset=3)
    assert [h.id for h in page2] == [h.id for h in hits[3:6]]  # type: ignore[union-attr]
    assert store.similar(NAME, point_id(12345), limit=5) is None


def test_count_per_label(store: VectorStore) -> None:
    assert store.count(NAME) == COUNT
    expected = {label: sum(1 for i in range(COUNT) if LABELS[i % 3] == label) for label in LABELS}
    for label in LABELS:
        assert store.count(NAME, label=label) == expected[label]
    assert store.label_counts(NAME, [*LABELS, "none"]) == {**expected, "none": 0}


def test_scroll_returns_every_point_once_across_batches(store: VectorStore) -> None:
    seen = list(store.scroll(NAME, batch=7))
    assert sorted(p.id for p in seen) == sorted(IDS)
    assert all(p.vector is None for p in seen)
    with_vectors = {p.id: p.vector for p in store.scroll(NAME, with_vectors=True, batch=16)}
    assert len(with_vectors) == COUNT
    for i in (0, 17, 39):
        np.testing.assert_allclose(with_vectors[IDS[i]], VECTORS[i], atol=1e-6)  # type: ignore[arg-type]


def test_delete(store: VectorStore) -> None:
    store.delete(NAME, [IDS[0], IDS[1], point_id(777)])
    assert store.count(NAME) == COUNT - 2
    assert store.retrieve(NAME, [IDS[0], IDS[1]]) == []
    assert IDS[0] not in {h.id for h in store.query(NAME, VECTORS[0], limit=5)}
    store.delete(NAME, [])
    assert store.count(NAME) == COUNT - 2


def test_set_payload_merges(store: VectorStore) -> None:
    store.set_payload(NAME, IDS[9], {"label": "b", "attribution": {"author": "Ann"}})
    payload = store.retrieve(NAME, [IDS[9]])[0].payload
    assert payload == {"label": "b", "n": 9, "path": "p/9.jpg", "attribution": {"author": "Ann"}}
    # The label index follows the change.
    assert IDS[9] in {h.id for h in store.query(NAME, VECTORS[9], limit=3, label="b")}
    assert IDS[9] not in {h.id for h in store.query(NAME, VECTORS[9], limit=COUNT, label="a")}
    # The vector is untouched.
    np.testing.assert_allclose(store.retrieve(NAME, [IDS[9]], True)[0].vector, VECTORS[9], atol=1e-6)  # type: ignore[arg-type]


def test_query_within_cells_is_exhaustive_over_them(store: VectorStore) -> None:
    """Points get a cell in one call per cell; a query restricted to some cells answers from exactly
    their points, best first, with the label filter and the left-out id still applied."""
    store.index_integer_field(NAME, CELL_FIELD)
    store.index_integer_field(NAME, CELL_FIELD)  # indexing an indexed field is no error
    cell_of = [i % 5 for i in range(COUNT)]
    store.set_payloads(
        NAME,
        [([IDS[i] for i in range(COUNT) if cell_of[i] == cell], {CELL_FIELD: cell}) for cell in range(5)],
    )
    store.set_payloads(NAME, [([], {CELL_FIELD: 9})])  # nothing to do is not an error
    store.set_payloads(NAME, [])
    kept = store.retrieve(NAME, [IDS[7]])[0].payload
    assert kept == {"label": LABELS[7 % 3], "n": 7, "path": "p/7.jpg", CELL_FIELD: 2}  # merged, not replaced

    query = unit_vectors(1, seed=12)[0]
    inside = {IDS[i] for i in range(COUNT) if cell_of[i] in (1, 3)}
    expected = [(i, s) for i, s in brute_force(query) if i in inside]
    hits = store.query(NAME, query, limit=6, cells=[3, 1])
    assert [h.id for h in hits] == [i for i, _ in expected[:6]]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected[:6]], atol=1e-5)
    assert len(store.query(NAME, query, limit=COUNT, cells=[1, 3])) == len(inside)
    labelled = store.query(NAME, query, limit=COUNT, cells=[1, 3], label="b", exclude_id=expected[0][0])
    assert {h.id for h in labelled} == {
        i for i in inside if LABELS[IDS.index(i) % 3] == "b" and i != expected[0][0]
    }
    assert store.query(NAME, query, limit=5, cells=[42]) == []


def test_stats_and_optimize(store: VectorStore) -> None:
    stats = store.stats(NAME)
    assert stats.points == COUNT
    assert 0 <= stats.indexed_vectors <= COUNT
    store.optimize(NAME)
    assert store.stats(NAME).points == COUNT
    assert store.query(NAME, VECTORS[1], limit=1)[0].id == IDS[1]
    store.ping()


# -- embedded only ------------------------------------------------------------------------------------


def test_embedded_shard_is_held_by_one_opener(tmp_path: Path) -> None:
    first = EmbeddedStore(tmp_path / "qdrant")
    first.ensure_collection(NAME, META)
    first.upsert(NAME, records())
    second = EmbeddedStore(tmp_path / "qdrant")
    with pytest.raises(StoreUnavailable) as caught:
        second.ping()
    message = str(caught.value)
    assert "open in another process" in message
    assert "make ingest" in message
    with pytest.raises(StoreUnavailable):
        second.query(NAME, VECTORS[0], limit=3)
    first.close()
    # Once the first lets go, the second opens it, with the data.
    assert second.count(NAME) == COUNT
    second.close()


def test_embedded_reopen_after_close_keeps_data(tmp_path: Path) -> None:
    first = EmbeddedStore(tmp_path / "qdrant")
    first.ensure_collection(NAME, META)
    first.upsert(NAME, records())
    first.set_payload(NAME, IDS[0], {"extra": 1})
    first.delete(NAME, [IDS[1]])
    first.close()
    reopened = EmbeddedStore(tmp_path / "qdrant")
    reopened.ensure_collection(NAME, META)
    assert reopened.collection_meta(NAME) == META
    assert reopened.count(NAME) == COUNT - 1
    assert reopened.retrieve(NAME, [IDS[0]])[0].payload["extra"] == 1
    hits = reopened.query(NAME, VECTORS[10], limit=1)
    assert hits[0].id == IDS[10] and hits[0].score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(CollectionMismatch):
        reopened.ensure_collection(NAME, {**META, "dim": 24})
    reopened.close()


def test_embedded_missing_collection_explains(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "qdrant")
    with pytest.raises(CollectionMissing, match="make ingest"):  # an empty library, not an outage
        store.query(NAME, VECTORS[0], limit=3)
    store.ping()  # nothing to open is not an error


# -- server only --------------------------------------------------------------------------------------


def test_unreachable_server_is_unavailable() -> None:
    store = ServerStore(url="http://127.0.0.1:9", timeout_s=1)
    try:
        with pytest.raises(StoreUnavailable, match="cannot be reached"):
            store.ping()
        with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:9"):
            store.query(NAME, VECTORS[0], limit=3)
        with pytest.raises(StoreUnavailable):
            store.count(NAME)
        with pytest.raises(StoreUnavailable):
            list(store.scroll(NAME))
        with pytest.raises(StoreUnavailable):
            store.ensure_collection(NAME, META)
    finally:
        store.close()


def test_combined_examples_query_is_the_brute_force_answer(store: VectorStore) -> None:
    """The combination rule of search with examples (search/refine.py) over this store's vectors: the
    answer is the brute-force ranking by the combined vector."""
    from search.refine import combine

    examples = [IDS[1], IDS[2], IDS[5], IDS[8], IDS[13]]
    weights = [1.0, 0.5, 2.0, -1.0, -0.5]
    stored = {p.id: p.vector for p in store.retrieve(NAME, examples, with_vectors=True)}
    vector = combine([stored[i] for i in examples], weights)  # type: ignore[misc]
    manual = sum(w * VECTORS[IDS.index(i)] for i, w in zip(examples, weights, strict=True))
    np.testing.assert_allclose(vector, manual / np.linalg.norm(manual), atol=1e-5)
    hits = store.query(NAME, vector, limit=COUNT, exact=True)
    expected = brute_force(vector)
    assert [h.id for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)
