"""GET /metrics: Prometheus' text format, counters that move with requests, bounded route labels, the
model/cache/upload metrics, the refusal of proxied scrapes, and two gunicorn workers whose counts add up."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.api_helpers")

import concurrent.futures  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import requests  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from devtools.live_server import free_port, start_gunicorn  # noqa: E402
from tests.api_helpers import ApiLibrary, assert_error, upload  # noqa: E402
from tests.image_factory import jpeg_bytes, photo  # noqa: E402

pytest_plugins = ["tests.api_helpers"]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and sorted labels (the client library's own parser)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.get_data()[:300]
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(response.get_data(as_text=True))


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when it does not exist yet."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(key)[label] for (sample, key) in samples if sample == name and label in dict(key)}


def test_exposition_parses_and_names_every_family(client: FlaskClient) -> None:
    client.get("/api/health")
    response = client.get("/metrics")
    families = {f.name for f in text_string_to_metric_families(response.get_data(as_text=True))}
    for name in (
        "wonders_http_requests",
        "wonders_http_request_duration_seconds",
        "wonders_model_inference_seconds",
        "wonders_model_batch_size",
        "wonders_model_queue_depth",
        "wonders_query_cache_lookups",
        "wonders_store_points",
        "wonders_job_running",
        "wonders_upload_rejections",
    ):
        assert name in families, f"{name} missing from {sorted(families)}"


def test_request_counters_and_durations_move(client: FlaskClient) -> None:
    before = scrape(client)
    for _ in range(3):
        assert client.get("/api/health").status_code == 200
    assert client.get("/api/images/not-an-id").status_code == 404
    after = scrape(client)
    health = {"method": "GET", "rule": "/api/health", "status": "200"}
    assert value(after, "wonders_http_requests_total", **health) - value(
        before, "wonders_http_requests_total", **health
    ) == pytest.approx(3)
    missing = {"method": "GET", "rule": "/api/images/<point_id>", "status": "404"}
    assert value(after, "wonders_http_requests_total", **missing) - value(
        before, "wonders_http_requests_total", **missing
    ) == pytest.approx(1)
    timed = {"method": "GET", "rule": "/api/health"}
    assert value(after, "wonders_http_request_duration_seconds_count", **timed) - value(
        before, "wonders_http_request_duration_seconds_count", **timed
    ) == pytest.approx(3)


def test_route_labels_stay_bounded_after_a_thousand_ids(client: FlaskClient) -> None:
    ids = [str(uuid.uuid4()) for _ in range(1000)]
    for point_id in ids:
        client.get(f"/api/images/{point_id}")
    for point_id in ids[:50]:
        client.get(f"/api/images/{point_id}/similar")
        client.get(f"/images/{point_id}/thumb")
        client.get(f"/api/no-such-route/{point_id}")
    text = client.get("/metrics").get_data(as_text=True)
    samples = parse(text)
    rules = label_values(samples, "wonders_http_requests_total", "rule")
    assert "/api/images/<point_id>" in rules
    assert "<unmatched>" in rules
    assert len(rules) <= 30, rules  # the app's routes, not one per id
    assert not any(point_id in text for point_id in ids)


def test_model_and_cache_metrics_move_with_searches(client: FlaskClient) -> None:
    before = scrape(client)
    query = f"a quiet harbour {uuid.uuid4().hex[:6]}"
    for _ in range(2):
        assert client.get("/api/search", query_string={"q": query}).status_code == 200
    assert client.post("/api/search/image", data=upload(jpeg_bytes(photo(7, (64, 48))))).status_code == 200
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("wonders_query_cache_lookups_total", result="miss") == pytest.approx(1)
    assert moved("wonders_query_cache_lookups_total", result="hit") == pytest.approx(1)
    assert moved("wonders_model_inference_seconds_count", tower="text") == pytest.approx(1)
    assert moved("wonders_model_inference_seconds_count", tower="image") == pytest.approx(1)
    assert moved("wonders_model_batch_size_sum", tower="image") == pytest.approx(1)
    assert value(after, "wonders_model_queue_depth") == 0


def test_points_per_collection(client: FlaskClient, api_library: ApiLibrary) -> None:
    samples = scrape(client)
    assert value(samples, "wonders_store_points", collection="images") == api_library.store.count("images")
    assert value(samples, "wonders_store_points", collection="prompts") > 0


def test_upload_rejections_by_reason(make_app: Any) -> None:
    client = make_app(max_upload_mb=0.01).test_client()
    before = scrape(client)
    big = jpeg_bytes(photo(8, (640, 480)))
    assert len(big) > 0.01 * 1024 * 1024
    assert_error(client.post("/api/search/image", data=upload(big)), 413)
    assert_error(client.post("/api/classify", data=upload(b"not an image at all")), 415)
    assert_error(client.post("/api/classify", data={}), 400)
    after = scrape(client)
    moved = {
        reason: value(after, "wonders_upload_rejections_total", reason=reason)
        - value(before, "wonders_upload_rejections_total", reason=reason)
        for reason in label_values(after, "wonders_upload_rejections_total", "reason")
    }
    assert {k: v for k, v in moved.items() if v} == {
        "payload_too_large": 1,
        "unsupported_image": 1,
        "invalid_parameter": 1,
    }


def test_a_proxied_scrape_is_refused(client: FlaskClient) -> None:
    assert_error(client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}), 404, "not_found")
    assert_error(client.get("/metrics", environ_base={"REMOTE_ADDR": "8.8.8.8"}), 404, "not_found")


def test_two_gunicorn_workers_add_up(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Qdrant server mode (several workers) over a server that is not there: /api/health needs no store.

    Each worker is replaced after 10 requests (gunicorn's --max-requests), so the 60 requests are served
    by at least five processes, most of them gone by the scrape: their counts must still add up, and the
    live gauges of the dead ones must be dropped (the child_exit hook)."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"stale values of an earlier run")
    env = {
        "CLIP_MODEL": str(tiny_model_dir),
        "CLIP_DEVICE": "cpu",
        "CLIP_PRECISION": "fp32",
        "QDRANT_URL": f"http://127.0.0.1:{free_port()}",
        "DATA_DIR": str(tmp_path / "data"),
        "IMAGES_DIR": str(tmp_path / "images"),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "2",
        "GUNICORN_CMD_ARGS": "--max-requests 10",
        "TORCH_THREADS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    server = start_gunicorn(env, tmp_path / "gunicorn.log", wait_ready=False)
    health_200 = {"method": "GET", "rule": "/api/health", "status": "200"}

    def served() -> float:
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        return value(parse(text), "wonders_http_requests_total", **health_200)

    def health(_: int) -> int:
        return requests.get(f"{server.url}/api/health", timeout=10).status_code

    try:
        before = served()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            assert set(pool.map(health, range(60))) == {200}
        assert served() - before == 60
        counted_by = {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}
        assert "1" not in counted_by, "stale files of an earlier run are wiped at start"
        assert len(counted_by) >= 5, f"requests were counted by {sorted(counted_by)}"
        # A worker that has just served its 10th request may still be exiting beside its successor:
        # once the master has reaped it (child_exit), only the two current workers' gauges remain.
        deadline = time.monotonic() + 30
        while True:
            live_gauges = {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("gauge_live*_*.db")}
            if len(live_gauges) <= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(live_gauges) <= 2, f"dead workers' live gauges remain: {sorted(live_gauges)}"
    finally:
        server.stop()


def test_ingest_progress_in_the_service(make_settings: Any, encoder: Any) -> None:
    """An ingest handed to the service shows how far it got, and its run is counted."""
    from api.factory import create_app
    from core.store import open_store
    from tests.image_factory import write

    settings = make_settings()
    for i in range(3):
        write(settings.images_dir / f"p{i}.jpg", jpeg_bytes(photo(300 + i, (96, 64))))
    store = open_store(settings)
    try:
        app = create_app(settings, encoder, store)
        client = app.test_client()
        before = scrape(client)
        job = app.extensions["wonders_ingest"]
        assert job.start([], recreate=False)
        job.wait(120)
        assert job.status()["state"] == "done", job.status()
        after = scrape(client)
        assert value(after, "wonders_job_done_items", job="ingest") == 3
        assert value(after, "wonders_job_total_items", job="ingest") == 3
        assert value(after, "wonders_job_running", job="ingest") == 0
        runs = {"job": "ingest", "outcome": "done"}
        assert value(after, "wonders_job_runs_total", **runs) - value(
            before, "wonders_job_runs_total", **runs
        ) == pytest.approx(1)
        assert value(after, "wonders_store_points", collection="images") == 3
    finally:
        store.close()
