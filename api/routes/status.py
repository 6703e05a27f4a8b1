"""Liveness, readiness, statistics and the class list."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify

from api.errors import error_response
from api.openapi import Blueprint
from api.schemas import MAX_K, ClassesResponse, HealthResponse, ReadyResponse, StatsResponse
from api.uploads import service
from core.store import IMAGES

blp = Blueprint("status", __name__, url_prefix="/api", description="Health, readiness and statistics")


@blp.route("/health", methods=["GET"])
@blp.response(200, HealthResponse)
def health() -> Response:
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@blp.route("/ready", methods=["GET"])
@blp.response(200, ReadyResponse)
def ready() -> Response:
    """200 once the model is loaded and warmed up and the store answers, else 503 with the reason."""
    state = service().readiness()
    if not state.ready:
        return error_response(503, state.code, state.message)
    encoder = service().encoder
    return jsonify({"ready": True, "model": encoder.model_name, "device": encoder.device})


@blp.route("/stats", methods=["GET"])
@blp.response(200, StatsResponse)
def stats() -> Response:
    """Point count, model, embedding size, counts per class and the last FAISS cross-check."""
    wonders = service()
    encoder, store = wonders.require_ready()
    classes = wonders.classifier().classes
    collection = store.stats(IMAGES)
    return jsonify(
        {
            "points": store.count(IMAGES),
            "indexed_vectors": collection.indexed_vectors,
            "model": encoder.model_name,
            "dim": encoder.dim,
            "device": encoder.device,
            "precision": encoder.precision,
            "store": wonders.settings.store_kind,
            "classes": store.label_counts(IMAGES, [c.id for c in classes]),
            "crosscheck": _crosscheck_report(wonders.settings.crosscheck_report),
            "query_cache": {"hits": wonders.cache.hits, "misses": wonders.cache.misses},
            "limits": {"max_upload_mb": wonders.settings.max_upload_mb, "max_k": MAX_K},
        }
    )


def _crosscheck_report(path: Any) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return result
    except (OSError, ValueError):
        return None


@blp.route("/classes", methods=["GET"])
@blp.response(200, ClassesResponse)
def classes() -> dict[str, Any]:
    """The classes with names, prompts and how many images carry each."""
    wonders = service()
    _, store = wonders.require_ready()
    known = wonders.classifier().classes
    counts = store.label_counts(IMAGES, [c.id for c in known])
    return {"classes": [{**c.label(), "prompts": list(c.prompts), "count": counts[c.id]} for c in known]}
