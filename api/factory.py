"""The application factory: `create_app(settings, encoder, store)`, collaborators in `app.extensions`."""

from __future__ import annotations

import io
import logging
import time
from typing import IO

from flask import Flask, Request, Response, g, request

from api.docs import register_docs
from api.errors import register_error_handlers
from api.hosts import register_host_check
from api.metrics import register_metrics
from api.openapi import Api, openapi_config
from api.routes import admin, classify, duplicates, embed, files, images, indexing, query, search, status
from api.routes import eval as eval_reports
from api.strict_params import refuse_unknown_query
from api.web import register_web
from core.model import ClipModel, release_freed_memory
from core.settings import Settings, load_settings
from core.store import VectorStore
from ingest.autostart import LibraryIndexer
from ingest.job import IngestJob
from ops.jobs import OpsJob
from search import SearchService

API_VERSION = "1.0"
# Multipart framing around the file: the file itself is checked against MAX_UPLOAD_MB exactly.
MULTIPART_OVERHEAD = 64 * 1024
# An oversize body up to this many times the limit is read and dropped before the 413, so the client
# (still sending) gets the JSON answer instead of a reset connection. Larger ones are cut off at once.
DRAIN_FACTOR = 4
# Every body but a multipart upload is a small JSON document (a query of at most 20,000 characters); a
# parser turns a 20 MB one into gigabytes of Python objects.
MAX_JSON_BYTES = 1024 * 1024
# Requests with a larger body (every photo upload) give their freed memory back to the system when they
# end: the body's copies and its decode. malloc_trim takes a few milliseconds; an upload, hundreds.
RELEASE_AFTER_BODY_BYTES = 64 * 1024


class WondersRequest(Request):
    """Uploaded files stay in memory (bounded by MAX_CONTENT_LENGTH), never in a temporary file on disk."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return io.BytesIO()


def create_app(
    settings: Settings | None = None,
    encoder: ClipModel | None = None,
    store: VectorStore | None = None,
    load: bool = True,
) -> Flask:
    """Build the Flask app. Missing encoder/store are loaded in a background thread when `load`."""
    settings = settings or load_settings()
    app = Flask(__name__, static_folder=None)
    app.request_class = WondersRequest
    app.url_map.merge_slashes = False  # "/api//search" is a 404, not an HTML redirect built from Host
    app.config.update(openapi_config(API_VERSION))
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + MULTIPART_OVERHEAD
    app.config["MAX_FORM_MEMORY_SIZE"] = 1024 * 1024
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]

    service = SearchService(settings, encoder=encoder, store=store)
    app.extensions["wonders"] = service
    app.extensions["wonders_ingest"] = IngestJob(service)
    app.extensions["wonders_ops"] = OpsJob(service)
    app.extensions["wonders_indexer"] = LibraryIndexer(service, app.extensions["wonders_ingest"])

    api = Api(app)
    for module in (
        search,
        query,
        embed,
        images,
        duplicates,
        classify,
        status,
        files,
        admin,
        indexing,
        eval_reports,
    ):
        api.register_blueprint(module.blp)
    register_error_handlers(app)
    register_metrics(app)
    refuse_unknown_query(app)
    register_docs(app)
    register_web(app)

    @app.before_request
    def _start_clock() -> None:
        g.started = time.perf_counter()
        if request.mimetype != "multipart/form-data":
            request.max_content_length = MAX_JSON_BYTES
        _drain_oversize_body(request.max_content_length or app.config["MAX_CONTENT_LENGTH"])

    register_host_check(app, settings)  # first of the request hooks

    @app.teardown_request
    def _give_memory_back(error: BaseException | None) -> None:
        # A large body and its copies (and the decode behind it) were freed into glibc's heap, which
        # keeps them for good under keep_freed_memory: hand them back (a few ms, large uploads only).
        if (request.content_length or 0) > RELEASE_AFTER_BODY_BYTES:
            release_freed_memory()

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    if encoder is None or store is None:
        if load:
            service.load_in_background()
    else:
        service.prepare()
        if load:
            service.load_text_towers_in_background()
    logging.getLogger(__name__).debug("app created")
    return app


def _drain_oversize_body(limit: int) -> None:
    """Read and drop a body over the limit (bounded), so the 413 that follows reaches the client."""
    length = request.content_length
    if not length or length <= limit or length > DRAIN_FACTOR * limit:
        return
    stream = request.environ.get("wsgi.input")
    remaining = length
    while stream is not None and remaining > 0:
        chunk = stream.read(min(1 << 16, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
