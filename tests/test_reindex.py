"""`make reindex`: two tiny models of different sizes. Inside the running service a client polling
throughout sees no error and no mixed answer (the old model's, then the new one's); a run killed with
kill -9 in the middle resumes where it stopped; the switch is atomic and the old vectors are gone at the
end; the server store swaps an alias."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from api.factory import create_app
from api.routes.admin import write_admin_token
from core.images import decode_image
from core.model import ClipModel
from core.payload import LABELS_VERSION_KEY
from core.settings import Settings
from core.store import IMAGES, PROMPTS, PointRecord, VectorStore, open_store
from core.store.server import ServerStore
from core.zero_shot import ZeroShotClassifier
from devtools.tiny_clip import build_tiny_clip
from ingest.handoff import TOKEN_HEADER
from ingest.pipeline import run_ingest
from ops.reindex import NothingToDo, reindex, target_name
from tests.ops_helpers import answers, make_library

pytestmark = [
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant"),
    pytest.mark.filterwarnings("ignore:Local mode performs exact"),
]

REPO = Path(__file__).resolve().parent.parent
QUERY = {"q": "a bridge over a river", "k": "5"}


@pytest.fixture(scope="module")
def second_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny CLIP: a larger embedding (24 instead of 16) and input (48 px instead of 32)."""
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip-b"), image_size=48, dim=24, seed=1)


@pytest.fixture(scope="module")
def second_model(second_model_dir: Path) -> ClipModel:
    return ClipModel(str(second_model_dir), device="cpu", precision="fp32")


def ingest_library(settings: Settings, encoder: ClipModel, store: VectorStore, count: int) -> None:
    make_library(settings.images_dir, count, seed=700)
    run_ingest(settings, encoder, store, show_progress=False)


class GatedStore:
    """The real store, except that the re-index stops after its first batch until the poller has seen
    enough answers in the middle of it."""

    def __init__(self, inner: VectorStore, polls_wanted: int) -> None:
        self._inner = inner
        self.polls = 0
        self.polls_wanted = polls_wanted
        self.in_the_middle = threading.Event()
        self.enough = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def upsert(self, name: str, points: Sequence[PointRecord]) -> None:
        self._inner.upsert(name, points)
        if name.startswith(f"{IMAGES}__") and not self.in_the_middle.is_set():
            self.in_the_middle.set()
            assert self.enough.wait(120)


def page(response: Any) -> list[tuple[str, float]]:
    return [(r["id"], round(r["score"], 5)) for r in response.get_json()["results"]]


def test_search_answers_throughout_and_switches_at_once(
    make_settings: Any, encoder: ClipModel, second_model: ClipModel, second_model_dir: Path
) -> None:
    settings = make_settings(encode_batch_size=2)
    inner = open_store(settings)
    ingest_library(settings, encoder, inner, 10)
    store = GatedStore(inner, polls_wanted=6)
    app = create_app(settings, encoder, store)  # type: ignore[arg-type]
    app.config["WONDERS_ADMIN_TOKEN"] = write_admin_token(settings.data_dir)
    headers = {TOKEN_HEADER: app.config["WONDERS_ADMIN_TOKEN"]}
    client = app.test_client()
    some_id = sorted(p.id for p in inner.scroll(IMAGES))[0]
    urls = {"text": ("/api/search", QUERY), "similar": (f"/api/images/{some_id}/similar", {})}

    def ask(poller: Any, kind: str) -> Any:
        url, args = urls[kind]
        response = poller.get(url, query_string=args)
        if response.status_code != 200:
            return (kind, "error", response.status_code, response.get_data()[:200])
        return (kind, page(response))

    old = {kind: ask(client, kind) for kind in urls}
    seen: list[Any] = []
    stop = threading.Event()

    def poll() -> None:
        poller = app.test_client()
        while not stop.is_set():
            seen.extend(ask(poller, kind) for kind in urls)
            if store.in_the_middle.is_set() and not store.enough.is_set():
                store.polls += 1
                if store.polls >= store.polls_wanted:
                    store.enough.set()

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        started = client.post(
            "/api/admin/reindex", json={"model": str(second_model_dir), "batch_size": 2}, headers=headers
        )
        assert started.status_code == 202, started.get_data()
        progress = client.get("/api/admin/reindex", headers=headers).get_json()
        assert progress["state"] == "running"
        assert client.post("/api/admin/ingest", json={}, headers=headers).status_code == 409
        app.extensions["wonders_ops"].wait(180)
        final = client.get("/api/admin/reindex", headers=headers).get_json()
        assert final["state"] == "done", final
        assert final["done"] == final["total"] == 10
    finally:
        store.enough.set()
        stop.set()
        thread.join(60)
    for _ in range(3):  # and answers after the switch
        seen.extend(ask(client, kind) for kind in urls)

    errors = [s for s in seen if s[1] == "error"]
    assert not errors, errors[:3]
    new = {kind: ask(client, kind) for kind in urls}
    for kind in urls:
        assert new[kind] != old[kind]
        answers_of_kind = [s for s in seen if s[0] == kind]
        kinds = ["old" if a == old[kind] else "new" if a == new[kind] else "mixed" for a in answers_of_kind]
        assert "mixed" not in kinds, f"{kind}: an answer of neither model"
        assert kinds.count("old") >= store.polls_wanted, f"{kind}: the old model answered during the re-index"
        assert kinds[-1] == "new"
        assert "old" not in kinds[kinds.index("new") :], f"{kind}: the switch happened once, for good"

    # The new model answers exactly what a service started with it would; the old vectors are gone.
    assert answers(settings, second_model, inner) == answers(
        settings, app.extensions["wonders"].encoder, inner
    )
    targets = [target_name(n, str(second_model_dir), 24) for n in (IMAGES, PROMPTS)]
    assert inner.list_collections() == sorted(targets)
    assert not (settings.shard_dir / IMAGES).exists()
    assert inner.collection_meta(IMAGES)["model"] == str(second_model_dir)  # type: ignore[index]
    assert {len(p.vector) for p in inner.scroll(IMAGES, with_vectors=True)} == {24}  # type: ignore[arg-type]
    assert client.get("/api/ready").status_code == 200
    inner.close()


KILL_AFTER_FOUR = """
import os, sys
from core.settings import load_settings
from core.store import open_store
from ops.reindex import load_model, reindex
settings = load_settings()
store = open_store(settings)
encoder = load_model(settings, sys.argv[1])
def progress(phase, done, total):
    if done >= 4:
        os.kill(os.getpid(), 9)
reindex(settings, store, encoder, batch_size=2, on_progress=progress)
"""


def run(args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


@pytest.mark.slow
def test_kill_9_in_the_middle_then_resume(
    make_settings: Any,
    encoder: ClipModel,
    second_model: ClipModel,
    second_model_dir: Path,
    subprocess_env: dict[str, str],
) -> None:
    settings = make_settings()
    store = open_store(settings)
    ingest_library(settings, encoder, store, 12)
    before = answers(settings, encoder, store)
    store.close()

    killed = run(["-c", KILL_AFTER_FOUR, str(second_model_dir)], subprocess_env)
    assert killed.returncode == -9, killed.stderr
    store = open_store(settings)
    target = target_name(IMAGES, str(second_model_dir), 24)
    assert store.count(target) == 4, "the batches written before the kill are kept"
    assert store.collection_target(IMAGES) == IMAGES
    assert answers(settings, encoder, store) == before, "until the switch, search answers as before"
    store.close()

    resumed = run(
        ["-m", "ops.reindex", "--model", str(second_model_dir), "--batch-size", "2", "--quiet"],
        subprocess_env,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "encoded 8 (resumed after 4 already done)" in resumed.stdout, resumed.stdout
    assert "switched" in resumed.stdout

    store = open_store(settings)
    try:
        assert store.collection_target(IMAGES) == target
        assert store.list_collections() == sorted([target, target_name(PROMPTS, str(second_model_dir), 24)])
        assert store.count(IMAGES) == 12
        fingerprint = ZeroShotClassifier.stored_fingerprint(store)
        for point in store.scroll(IMAGES, with_vectors=True):
            assert point.payload[LABELS_VERSION_KEY] == fingerprint
            photo = decode_image(
                settings.images_dir / point.payload["path"], settings.max_image_pixels, min_side=96
            )
            expected = second_model.image.encode_images([photo.image])[0]
            assert np.allclose(point.vector, expected, atol=1e-5), "encoded with the new model"
        assert answers(settings, second_model, store)[-1][1] == str(second_model_dir)
    finally:
        store.close()
    again = run(["-m", "ops.reindex", "--model", str(second_model_dir), "--quiet"], subprocess_env)
    assert again.returncode == 0 and "already built" in again.stdout


def test_the_server_store_swaps_an_alias(
    make_settings: Any, encoder: ClipModel, second_model: ClipModel, second_model_dir: Path
) -> None:
    settings = make_settings(qdrant_url="http://qdrant.invalid:6333")
    store = ServerStore(url="local", client=QdrantClient(":memory:"))
    ingest_library(settings, encoder, store, 6)
    report = reindex(settings, store, second_model, batch_size=4)
    assert report.switched and report.encoded == 6
    target = target_name(IMAGES, str(second_model_dir), 24)
    assert store.collection_target(IMAGES) == target
    assert IMAGES not in store.list_collections() and PROMPTS not in store.list_collections()
    assert store.collection_meta(IMAGES)["dim"] == 24  # type: ignore[index]
    answers(settings, second_model, store)  # searchable through the aliases
    with pytest.raises(NothingToDo):
        reindex(settings, store, second_model)
    # And back to the first model: the alias moves on and the second model's collections go.
    back = reindex(settings, store, encoder, batch_size=4)
    assert back.switched
    assert store.list_collections() == sorted(
        target_name(n, encoder.model_name, 16) for n in (IMAGES, PROMPTS)
    )


@pytest.mark.slow
def test_make_reindex_hands_the_work_to_the_running_service(
    make_settings: Any,
    encoder: ClipModel,
    second_model_dir: Path,
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """The real thing: gunicorn serving, `python -m ops.reindex` handing its work over, the service then
    answering with the new model without a restart."""
    import requests

    from devtools.live_server import start_gunicorn

    settings = make_settings()
    store = open_store(settings)
    ingest_library(settings, encoder, store, 5)
    store.close()
    server = start_gunicorn({**subprocess_env, "TORCH_THREADS": "1"}, tmp_path / "gunicorn.log")
    try:
        env = {**subprocess_env, "PORT": str(server.port)}
        handed = run(["-m", "ops.reindex", "--model", str(second_model_dir), "--quiet"], env)
        assert handed.returncode == 0, handed.stderr + handed.stdout + server.log()
        assert "handing the re-index to it" in handed.stdout
        assert "switched" in handed.stdout
        stats = requests.get(f"{server.url}/api/stats", timeout=30).json()
        assert (stats["model"], stats["dim"], stats["points"]) == (str(second_model_dir), 24, 5)
        assert requests.get(f"{server.url}/api/search", params={"q": "a lake"}, timeout=30).status_code == 200
        metrics = requests.get(f"{server.url}/metrics", timeout=30).text
        assert 'wonders_job_runs_total{job="reindex",outcome="done"} 1.0' in metrics
    finally:
        server.stop()
