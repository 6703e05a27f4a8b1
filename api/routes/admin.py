"""Loopback-only administration: the ingest hand-off used by `make ingest` while the service runs.

A request must come from this machine and carry the token the service wrote to `data/admin.token`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any

import marshmallow as ma
from flask import Response, current_app, jsonify, request

from api.context import ingest_job, service
from api.errors import ApiError
from api.openapi import Blueprint
from ingest.handoff import TOKEN_FILE, TOKEN_HEADER

blp = Blueprint("admin", __name__, url_prefix="/api/admin", description="Local administration")


class IngestArgs(ma.Schema):
    """Which paths to ingest (default: the library) and whether to rebuild."""

    class Meta:
        unknown = ma.RAISE

    paths = ma.fields.List(ma.fields.String(validate=ma.validate.Length(max=4096)), load_default=list)
    recreate = ma.fields.Boolean(load_default=False)
    prune = ma.fields.Boolean(load_default=False)


def write_admin_token(data_dir: Path) -> str:
    """Create the token file (readable by the owner only) and return the token."""
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path = data_dir / TOKEN_FILE
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    # Created owner-only (never readable by others, not even for a moment) and never through a link.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token)
    tmp.replace(path)
    return token


def _authorize() -> None:
    expected = current_app.config.get("WONDERS_ADMIN_TOKEN")
    address = request.remote_addr or ""
    try:
        local = ipaddress.ip_address(address).is_loopback
    except ValueError:
        local = False
    given = request.headers.get(TOKEN_HEADER, "")
    if not expected or not local or not hmac.compare_digest(given.encode(), str(expected).encode()):
        raise ApiError(
            403, "forbidden", "Administration is only available locally, with the service's token."
        )


@blp.before_request
def _authorize_first() -> None:
    """Every admin request is authorized before anything of it is parsed (no schema answers a stranger)."""
    _authorize()


@blp.route("/ingest", methods=["GET"])
def ingest_status() -> Response:
    """State of the ingest run inside the service."""
    _authorize()
    return jsonify(ingest_job().status())


@blp.route("/ingest", methods=["POST"])
@blp.arguments(IngestArgs, location="json")
def ingest_start(args: dict[str, Any]) -> tuple[Response, int]:
    """Start an ingest inside the service (which owns the embedded shard)."""
    _authorize()
    wonders = service()
    wonders.require_loaded()
    library = wonders.settings.images_dir.resolve()
    paths = [Path(p) for p in args["paths"]]
    for path in paths:
        # Only the library is served (search/files.py), so only the library may be ingested this way.
        if not path.is_absolute() or not path.resolve().is_relative_to(library):
            raise ApiError(
                400,
                "outside_library",
                "Only paths inside the photo library (IMAGES_DIR) can be ingested by the service.",
            )
    job = ingest_job()
    started = job.start(paths, args["recreate"], args["prune"])
    return jsonify(job.status()), 202 if started else 409
