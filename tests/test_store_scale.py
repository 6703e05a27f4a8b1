"""The store at scale: int8 quantization keeps recall against brute force, and the server store creates
collections with the cluster layout the settings ask for (checked on the wire, against a recording
stand-in for a Qdrant server, since qdrant-client's local mode accepts those fields but drops them)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.settings import Settings
from core.store.base import IMAGES, PROMPTS, PointRecord
from core.store.embedded import EmbeddedStore
from core.store.server import ServerStore
from core.store.tuning import StoreTuning

pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version")

COUNT = 4000
DIM = 96
K = 12


def clustered_unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around 40 centres: near neighbours are close together, as CLIP's are."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    raw = centres[rng.integers(0, 40, size=n)] + 0.6 * rng.normal(size=(n, dim))
    return (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    """The stored vectors, then 40 queries near them."""
    return clustered_unit_vectors(COUNT + 40, DIM, seed=3)


def build(root: Path, vectors: np.ndarray, tuning: StoreTuning) -> EmbeddedStore:
    """An embedded store holding the first COUNT vectors, every one in an HNSW index."""
    store = EmbeddedStore(root, indexing_threshold_kb=100, tuning=tuning)
    store.ensure_collection(IMAGES, {"model": "m", "dim": DIM})
    ids = [str(uuid.UUID(int=i + 1)) for i in range(COUNT)]
    for start in range(0, COUNT, 500):
        store.upsert(IMAGES, [PointRecord(ids[i], {"n": i}, vectors[i]) for i in range(start, start + 500)])
    store.optimize(IMAGES)
    assert store.stats(IMAGES).indexed_vectors == COUNT
    return store


def recall_and_score_error(store: EmbeddedStore, vectors: np.ndarray) -> tuple[float, float]:
    """Mean recall@K of the store against brute force, and the largest error of a returned score."""
    stored = vectors[:COUNT]
    recalls, worst = [], 0.0
    for query in vectors[COUNT:]:
        truth = set(np.argsort(-(stored @ query))[:K].tolist())
        hits = store.query(IMAGES, query, limit=K)
        got = [int(h.payload["n"]) for h in hits]
        recalls.append(len(truth & set(got)) / K)
        exact = stored[got] @ query
        worst = max(worst, float(np.max(np.abs(exact - [h.score for h in hits]))))
    return float(np.mean(recalls)), worst


def test_int8_with_oversampling_and_rescoring_keeps_recall(tmp_path: Path, vectors: np.ndarray) -> None:
    store = build(tmp_path / "q", vectors, StoreTuning(quantization="int8", vectors_on_disk=True))
    try:
        assert list((tmp_path / "q" / IMAGES).rglob("quantized.data")), "no int8 copy was built"
        recall, score_error = recall_and_score_error(store, vectors)
        assert recall >= 0.98
        assert score_error < 1e-5  # rescored: the scores are the originals' cosines
        # Without rescoring, the int8 copy answers alone: its scores are visibly off, so the
        # searches above really went through the quantized vectors.
        store.tuning = StoreTuning(quantization="int8", rescore=False, oversampling=1.0)
        _, raw_error = recall_and_score_error(store, vectors)
        assert raw_error > 1e-3
        # An exact search ignores the int8 copy.
        query = vectors[COUNT]
        hits = store.query(IMAGES, query, limit=K, exact=True)
        expected = np.argsort(-(vectors[:COUNT] @ query))[:K].tolist()
        assert [int(h.payload["n"]) for h in hits] == expected
    finally:
        store.close()


def test_prompts_collection_stays_plain(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, indexing_threshold_kb=1, tuning=StoreTuning(quantization="int8"))
    try:
        store.ensure_collection(PROMPTS, {"model": "m", "dim": 8})
        vectors = clustered_unit_vectors(200, 8, seed=1)
        store.upsert(PROMPTS, [PointRecord(str(uuid.UUID(int=i + 1)), {}, v) for i, v in enumerate(vectors)])
        store.optimize(PROMPTS)
        assert not list((tmp_path / PROMPTS).rglob("quantized.data"))
    finally:
        store.close()


def test_tuning_comes_from_settings() -> None:
    settings = Settings(
        quantization="int8",
        quantization_oversampling=3.0,
        quantization_rescore=False,
        vectors_on_disk=True,
        qdrant_shards=6,
        qdrant_replication_factor=2,
        qdrant_write_consistency=2,
        hnsw_m=32,
        hnsw_ef_construct=256,
    )
    assert StoreTuning.from_settings(settings) == StoreTuning(
        quantization="int8",
        quantile=0.99,
        rescore=False,
        oversampling=3.0,
        vectors_on_disk=True,
        shards=6,
        replication_factor=2,
        write_consistency=2,
        hnsw_m=32,
        hnsw_ef_construct=256,
    )
    assert StoreTuning.from_settings(Settings()) == StoreTuning()


# -- the server adapter on the wire ---------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Answers the few calls ensure_collection makes, as a Qdrant server would, and records them."""

    calls: list[tuple[str, str, Any]]

    def log_message(self, *args: Any) -> None:
        """Quiet."""

    def _answer(self, result: Any) -> None:
        body = json.dumps({"result": result, "status": "ok", "time": 0.0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        """Version probe and `collection_exists`."""
        self.calls.append(("GET", self.path, None))
        if self.path.endswith("/exists"):
            self._answer({"exists": False})
        else:
            self._answer({"title": "qdrant", "version": "1.15.0"})

    def do_PUT(self) -> None:
        """`create_collection` and `create_payload_index`."""
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"null")
        self.calls.append(("PUT", self.path, body))
        if "/index" in self.path:
            self._answer({"operation_id": 1, "status": "completed"})
        else:
            self._answer(True)


@pytest.fixture
def recording_server() -> Iterator[tuple[str, list[tuple[str, str, Any]]]]:
    """A local HTTP server that stands in for Qdrant; yields its URL and the calls it received."""
    calls: list[tuple[str, str, Any]] = []
    handler = type("Handler", (_Recorder,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", calls
    server.shutdown()
    server.server_close()


def created(calls: list[tuple[str, str, Any]], name: str) -> dict[str, Any]:
    """The body of the create-collection request for `name`."""
    bodies = [
        body
        for method, path, body in calls
        if method == "PUT" and path.split("?")[0] == f"/collections/{name}"
    ]
    assert len(bodies) == 1
    result: dict[str, Any] = bodies[0]
    return result


def test_server_creates_collections_with_the_cluster_layout(
    recording_server: tuple[str, list[tuple[str, str, Any]]],
) -> None:
    url, calls = recording_server
    tuning = StoreTuning.from_settings(
        Settings(
            quantization="int8",
            vectors_on_disk=True,
            qdrant_shards=6,
            qdrant_replication_factor=2,
            qdrant_write_consistency=2,
            hnsw_m=32,
            hnsw_ef_construct=256,
        )
    )
    store = ServerStore(url, timeout_s=5, tuning=tuning)
    try:
        store.ensure_collection(IMAGES, {"model": "m", "dim": 768})
        store.ensure_collection(PROMPTS, {"model": "m", "dim": 768})
    finally:
        store.close()
    images = created(calls, IMAGES)
    assert images["shard_number"] == 6
    assert images["replication_factor"] == 2
    assert images["write_consistency_factor"] == 2
    assert images["vectors"] == {"size": 768, "distance": "Cosine", "on_disk": True}
    assert images["quantization_config"] == {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}
    assert images["metadata"] == {"model": "m", "dim": 768}
    assert images["hnsw_config"] == {"m": 32, "ef_construct": 256}
    # The prompts collection is spread and replicated the same way, but keeps plain float32 in RAM.
    prompts = created(calls, PROMPTS)
    assert (prompts["shard_number"], prompts["replication_factor"]) == (6, 2)
    assert "quantization_config" not in prompts and "on_disk" not in prompts["vectors"]
    # Each collection indexes its class label (keyword) and its text-search cell (integer), once.
    index_calls = sorted(
        (path, body["field_name"], body["field_schema"])
        for method, path, body in calls
        if method == "PUT" and "/index" in path
    )
    assert index_calls == sorted(
        (f"/collections/{name}/index?wait=true", field, schema)
        for name in (IMAGES, PROMPTS)
        for field, schema in (("label", "keyword"), ("cell", "integer"))
    )


def test_server_defaults_send_a_single_unreplicated_shard(
    recording_server: tuple[str, list[tuple[str, str, Any]]],
) -> None:
    url, calls = recording_server
    store = ServerStore(url, timeout_s=5)
    try:
        store.ensure_collection(IMAGES, {"model": "m", "dim": 8})
    finally:
        store.close()
    body = created(calls, IMAGES)
    assert (body["shard_number"], body["replication_factor"], body["write_consistency_factor"]) == (1, 1, 1)
    assert "quantization_config" not in body


def test_the_embedded_graph_takes_its_settings(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, tuning=StoreTuning(hnsw_m=24, hnsw_ef_construct=200))
    try:
        store.ensure_collection(IMAGES, {"model": "m", "dim": 8})
    finally:
        store.close()
    config = json.loads((tmp_path / IMAGES / "edge_config.json").read_text())
    assert (config["hnsw_config"]["m"], config["hnsw_config"]["ef_construct"]) == (24, 200)
