"""HTTP metrics and `GET /metrics` (Prometheus' text format), for loopback and the compose network only.

Requests are counted and timed by route rule (`/api/images/<point_id>`), never by raw path, so the
series stay bounded however many photos are asked for. The model, cache, store and job metrics are
defined in `core/metrics.py`. With PROMETHEUS_MULTIPROC_DIR set (gunicorn, api/gunicorn_conf.py) every
worker writes its values to that folder and a scrape, answered by any worker, adds up all of them.

nginx never forwards /metrics (deploy/nginx/templates/default.conf.template); the route itself also refuses
anything that came through a proxy or from outside loopback and private networks.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from api.errors import error_response
from core.metrics import PREFIX, STORE_POINTS
from core.store import IMAGES, PROMPTS, StoreError

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
UNMATCHED = "<unmatched>"  # the label of requests no route matched (404s of unknown paths)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The routes that take an uploaded photo: their refusals are counted by reason.
UPLOAD_RULES = frozenset({"/api/search/image", "/api/classify"})
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)

HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests_total",
    "HTTP requests answered, by method, route rule and status.",
    ["method", "rule", "status"],
)
HTTP_DURATION = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Seconds from the request reaching Flask to its answer, by method and route rule.",
    ["method", "rule"],
    buckets=DURATION_BUCKETS,
)
UPLOAD_REJECTIONS = Counter(
    f"{PREFIX}_upload_rejections_total",
    "Uploaded photos refused, by reason (the error code: payload_too_large, unsupported_image, ...).",
    ["reason"],
)


def registry() -> CollectorRegistry:
    """The registry a scrape reads: every worker's files in multiprocess mode, else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        return combined
    return REGISTRY


def route_label() -> str:
    """The matched route rule of this request, or UNMATCHED: never the raw path."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def may_scrape() -> bool:
    """True for a direct request from loopback or a private network (the compose network), never one
    relayed by a proxy (nginx sets X-Forwarded-For)."""
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def register_metrics(app: Flask) -> None:
    """Count and time every request, and serve `GET /metrics`."""

    @app.before_request
    def _metrics_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("metrics_started")
        method = request.method if request.method in METHODS else "other"
        rule = route_label()
        HTTP_REQUESTS.labels(method=method, rule=rule, status=str(response.status_code)).inc()
        if started is not None:
            HTTP_DURATION.labels(method=method, rule=rule).observe(time.perf_counter() - started)
        if rule in UPLOAD_RULES and 400 <= response.status_code < 500:
            UPLOAD_REJECTIONS.labels(reason=_error_code(response)).inc()
        return response

    def metrics() -> Response:
        """Every metric in Prometheus' text format."""
        if not may_scrape():
            return error_response(404, "not_found", "No such resource.")
        _count_points(app)
        return Response(generate_latest(registry()), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule(METRICS_PATH, "metrics", metrics, methods=["GET"])


def _count_points(app: Flask) -> None:
    """Refresh the points gauge from the store, when it is open (a scrape must never fail on it)."""
    service = app.extensions.get("wonders")
    store = getattr(service, "store", None)
    if store is None:
        return
    for name in (IMAGES, PROMPTS):
        try:
            STORE_POINTS.labels(collection=name).set(store.count(name))
        except StoreError as err:
            log.debug("points of %s not counted: %s", name, err)
            return


def _error_code(response: Response) -> str:
    """The error code of one of the API's error answers (bounded: the API's own codes)."""
    try:
        body = response.get_json(silent=True) or {}
        code = body.get("error", {}).get("code")
    except (AttributeError, RuntimeError):
        code = None
    return code if isinstance(code, str) and len(code) <= 64 else f"http_{response.status_code}"
