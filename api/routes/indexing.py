"""The state of the library's indexing: what the service is indexing by itself (GET /api/ingest)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from api.context import indexer
from api.openapi import Blueprint

blp = Blueprint("indexing", __name__, url_prefix="/api", description="Indexing progress")


class FetchState(ma.Schema):
    """The first-run download of the landmark library: off, running, done or failed (with why)."""

    state = ma.fields.String(required=True)
    message = ma.fields.String()


class IngestStatus(ma.Schema):
    """The indexing job: idle, running (phase, done of total), done (new) or failed; and the download."""

    state = ma.fields.String(required=True)
    phase = ma.fields.String()
    done = ma.fields.Integer()
    total = ma.fields.Integer()
    new = ma.fields.Integer()
    fetch = ma.fields.Nested(FetchState, required=True)


@blp.route("/ingest", methods=["GET"])
@blp.response(200, IngestStatus)
def ingest_status() -> dict[str, Any]:
    """How far the indexing of the library is (the UI shows "indexing 340 of 1,000")."""
    return indexer().status()
