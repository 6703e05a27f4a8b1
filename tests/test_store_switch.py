"""Switching collections behind a name, for both adapters (the contract of tests/test_store_contract.py):
an alias swap answers from the new collection at once, the old one stays until dropped, and the embedded
store's pointer file survives a restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.store.base import PointRecord, VectorStore
from core.store.embedded import EmbeddedStore
from tests.test_store_contract import empty_store, point_id, unit_vectors  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant"),
    pytest.mark.filterwarnings("ignore:Local mode performs exact"),
]

OLD = {"model": "old-model", "dim": 8, "image_size": 32}
NEW = {"model": "new-model", "dim": 5, "image_size": 48}


def fill(store: VectorStore, name: str, meta: dict[str, object], n: int, seed: int) -> np.ndarray:
    store.ensure_collection(name, meta)
    vectors = unit_vectors(n, dim=int(meta["dim"]), seed=seed)  # type: ignore[call-overload]
    store.upsert(name, [PointRecord(point_id(i), {"n": i, "label": "a"}, vectors[i]) for i in range(n)])
    return vectors


def test_switch_answers_from_the_new_collection(empty_store: VectorStore) -> None:  # noqa: F811
    store = empty_store
    fill(store, "images", OLD, 6, seed=1)
    new = fill(store, "images__new", NEW, 4, seed=2)
    assert store.collection_target("images") == "images"
    store.switch_aliases({"images": "images__new"})
    assert store.collection_target("images") == "images__new"
    assert store.collection_meta("images") == store.collection_meta("images__new")
    assert store.collection_meta("images")["model"] == "new-model"  # type: ignore[index]
    assert store.count("images") == 4
    hits = store.query("images", new[2], limit=1)
    assert hits[0].id == point_id(2) and hits[0].score == pytest.approx(1.0, abs=1e-5)
    # The old collection is dropped after the switch (on the server the first switch already removed it).
    store.drop_collection("images")
    assert "images__new" in store.list_collections()
    assert store.count("images") == 4
    # A second switch moves the alias on, and the collection it left can go.
    newer = fill(store, "images__newer", OLD, 3, seed=3)
    store.switch_aliases({"images": "images__newer"})
    store.drop_collection("images__new")
    assert store.list_collections() == ["images__newer"]
    assert store.query("images", newer[1], limit=1)[0].id == point_id(1)
    assert store.retrieve("images", [point_id(0)], with_vectors=True)[0].vector is not None


def test_two_names_switch_together(empty_store: VectorStore) -> None:  # noqa: F811
    store = empty_store
    for name in ("images", "prompts"):
        fill(store, name, OLD, 3, seed=4)
        fill(store, f"{name}__new", NEW, 2, seed=5)
    store.switch_aliases({"images": "images__new", "prompts": "prompts__new"})
    assert store.count("images") == store.count("prompts") == 2


def test_the_embedded_pointer_survives_a_restart_and_a_rebuild(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "qdrant")
    fill(store, "images", OLD, 3, seed=6)
    fill(store, "images__new", NEW, 2, seed=7)
    with pytest.raises(Exception, match="does not exist"):
        store.switch_aliases({"images": "images__missing"})
    store.switch_aliases({"images": "images__new"})
    store.close()
    reopened = EmbeddedStore(tmp_path / "qdrant")
    assert reopened.count("images") == 2
    assert reopened.collection_meta("images")["model"] == "new-model"  # type: ignore[index]
    # Rebuilding the name (ingest --recreate) drops what it answered from and starts under its own name.
    reopened.ensure_collection("images", OLD, recreate=True)
    assert reopened.collection_target("images") == "images"
    assert reopened.count("images") == 0
    assert "images__new" not in reopened.list_collections()
    reopened.close()
