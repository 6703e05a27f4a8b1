"""The service's own Prometheus metrics (no web framework): the model, the query cache, the store, the jobs.

Defined once here, on prometheus_client's default registry; `api/metrics.py` adds the HTTP ones and serves
them all at `GET /metrics`. Under gunicorn with several workers, prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by api/gunicorn_conf.py before any worker starts) keeps one file of values
per worker and adds them up at scrape time, so every gauge says how its workers' values combine.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREFIX = "wonders"

# A forward pass of the tiny test model takes a millisecond, one ViT-L/14 image on a CPU several seconds.
INFERENCE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

MODEL_INFERENCE_SECONDS = Histogram(
    f"{PREFIX}_model_inference_seconds",
    "Seconds of one forward pass on the model thread, by tower (image, text).",
    ["tower"],
    buckets=INFERENCE_BUCKETS,
)
MODEL_BATCH_SIZE = Histogram(
    f"{PREFIX}_model_batch_size",
    "Inputs (images or texts) in one forward pass, by tower.",
    ["tower"],
    buckets=BATCH_BUCKETS,
)
MODEL_QUEUE_DEPTH = Gauge(
    f"{PREFIX}_model_queue_depth",
    "Jobs waiting for the model thread (not counting the one it runs).",
    multiprocess_mode="livesum",
)
QUERY_CACHE_LOOKUPS = Counter(
    f"{PREFIX}_query_cache_lookups_total",
    "Text query cache lookups, by result (hit, miss).",
    ["result"],
)
STORE_POINTS = Gauge(
    f"{PREFIX}_store_points",
    "Points in each collection, as last counted (at a scrape, or at the end of a job).",
    ["collection"],
    multiprocess_mode="mostrecent",
)
JOB_RUNNING = Gauge(
    f"{PREFIX}_job_running",
    "1 while a job of this kind (ingest, reindex, backup) runs inside the service.",
    ["job"],
    multiprocess_mode="livesum",
)
JOB_DONE = Gauge(
    f"{PREFIX}_job_done_items",
    "Items a running job has done so far (photos encoded, points written).",
    ["job"],
    multiprocess_mode="livesum",
)
JOB_TOTAL = Gauge(
    f"{PREFIX}_job_total_items",
    "Items the running job will do in all.",
    ["job"],
    multiprocess_mode="livesum",
)
JOB_RUNS = Counter(
    f"{PREFIX}_job_runs_total",
    "Jobs run inside the service, by kind and outcome (done, failed).",
    ["job", "outcome"],
)


def job_progress(job: str, done: int, total: int) -> None:
    """Record how far a running job is."""
    JOB_DONE.labels(job=job).set(done)
    JOB_TOTAL.labels(job=job).set(total)


def job_started(job: str) -> None:
    """A job of this kind started: running, nothing done yet."""
    JOB_RUNNING.labels(job=job).set(1)
    job_progress(job, 0, 0)


def job_ended(job: str, outcome: str) -> None:
    """A job ended (`done` or `failed`): not running any more, its run counted."""
    JOB_RUNNING.labels(job=job).set(0)
    JOB_RUNS.labels(job=job, outcome=outcome).inc()
