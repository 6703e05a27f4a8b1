"""Loopback-only administration: the hand-offs of `make ingest`, `make backup` and `make reindex` while
the service runs (it owns the embedded shard).

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
from ops.jobs import OpsJob, backup_work, cells_work, reindex_work

blp = Blueprint("admin", __name__, url_prefix="/api/admin", description="Local administration")


class IngestArgs(ma.Schema):
    """Which paths to ingest (default: the library) and whether to rebuild."""

    class Meta:
        unknown = ma.RAISE

    paths = ma.fields.List(ma.fields.String(validate=ma.validate.Length(max=4096)), load_default=list)
    recreate = ma.fields.Boolean(load_default=False)
    prune = ma.fields.Boolean(load_default=False)


class BackupArgs(ma.Schema):
    """Where the service writes the archive: an absolute path ending in .tar."""

    class Meta:
        unknown = ma.RAISE

    archive = ma.fields.String(required=True, validate=ma.validate.Length(min=5, max=4096))


class ReindexArgs(ma.Schema):
    """The model to re-index with, and the images per forward pass."""

    class Meta:
        unknown = ma.RAISE

    model = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=4096))
    batch_size = ma.fields.Integer(load_default=16, validate=ma.validate.Range(min=1, max=512))


def ops_job() -> OpsJob:
    """The backup / re-index job of the running app."""
    found: OpsJob = current_app.extensions["wonders_ops"]
    return found


class CellsArgs(ma.Schema):
    """Body of POST /api/admin/cells."""

    class Meta:
        unknown = ma.RAISE

    cells = ma.fields.Integer(
        load_default=None, allow_none=True, validate=ma.validate.Range(min=1, max=1_000_000)
    )


class CrosscheckArgs(ma.Schema):
    """How many stored vectors are asked, and how many neighbours are compared."""

    class Meta:
        unknown = ma.RAISE

    samples = ma.fields.Integer(load_default=100, validate=ma.validate.Range(1, 10_000))
    k = ma.fields.Integer(load_default=12, validate=ma.validate.Range(1, 100))


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
    if ops_job().running() == "reindex":
        raise ApiError(409, "conflict", "A re-index is running; ingest again when it has switched.")
    if ops_job().running() == "cells":
        raise ApiError(409, "conflict", "The cells are being trained; ingest again when they are.")
    job = ingest_job()
    started = job.start(paths, args["recreate"], args["prune"])
    return jsonify(job.status()), 202 if started else 409


@blp.route("/backup", methods=["GET"])
def backup_status() -> Response:
    """State of the backup inside the service."""
    return jsonify(ops_job().status("backup"))


@blp.route("/backup", methods=["POST"])
@blp.arguments(BackupArgs, location="json")
def backup_start(args: dict[str, Any]) -> tuple[Response, int]:
    """Write a backup archive from inside the service (`make backup`)."""
    archive = Path(args["archive"])
    if not archive.is_absolute() or archive.suffix != ".tar":
        raise ApiError(400, "invalid_parameter", "archive: an absolute path ending in .tar")
    service().require_loaded()
    return _start("backup", backup_work(service(), archive))


@blp.route("/reindex", methods=["GET"])
def reindex_status() -> Response:
    """State of the re-index inside the service."""
    return jsonify(ops_job().status("reindex"))


@blp.route("/reindex", methods=["POST"])
@blp.arguments(ReindexArgs, location="json")
def reindex_start(args: dict[str, Any]) -> tuple[Response, int]:
    """Re-index every photo with another model, then switch to it (`make reindex`)."""
    service().require_loaded()
    if ingest_job().status().get("state") == "running":
        raise ApiError(409, "conflict", "An ingest is running; re-index when it has finished.")
    return _start("reindex", reindex_work(service(), args["model"], args["batch_size"]))


@blp.route("/cells", methods=["GET"])
def cells_status() -> Response:
    """State of the training of the cells inside the service."""
    return jsonify(ops_job().status("cells"))


@blp.route("/cells", methods=["POST"])
@blp.arguments(CellsArgs, location="json")
def cells_start(args: dict[str, Any]) -> tuple[Response, int]:
    """Train the cells text queries are routed by (`make cells`)."""
    service().require_loaded()
    if ingest_job().status().get("state") == "running":
        raise ApiError(409, "conflict", "An ingest is running; train the cells when it has finished.")
    return _start("cells", cells_work(service(), args["cells"]))


def _start(kind: str, work: Any) -> tuple[Response, int]:
    job = ops_job()
    if not job.start(kind, work):
        raise ApiError(
            409, "conflict", f"A {job.running()} is running in the service; try again when it ends."
        )
    return jsonify(job.status(kind)), 202


@blp.route("/crosscheck", methods=["POST"])
@blp.arguments(CrosscheckArgs, location="json")
def crosscheck_run(args: dict[str, Any]) -> Response:
    """Rerun the FAISS cross-check on the service's store (`make crosscheck` while the service runs)."""
    from eval.crosscheck import format_report, run_crosscheck, save_report

    _authorize()
    wonders = service()
    _, store = wonders.require_loaded()
    report = run_crosscheck(store, wonders.settings, samples=args["samples"], k=args["k"])
    save_report(report, wonders.settings.crosscheck_report)
    return jsonify({"report": report, "summary": format_report(report)})
