"""Liveness, readiness, statistics and the class list."""

from __future__ import annotations

from dataclasses import asdict

from flask import Response, jsonify

from api.context import service
from api.errors import error_response
from api.openapi import Blueprint
from api.schemas import ClassesResponse, HealthResponse, ReadyResponse, StatsResponse
from search.results import ClassInfo, Stats

blp = Blueprint("status", __name__, url_prefix="/api", description="Health, readiness and statistics")


@blp.route("/health", methods=["GET"])
@blp.response(200, HealthResponse)
def health() -> Response:
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@blp.route("/ready", methods=["GET"])
@blp.response(200, ReadyResponse)
def ready() -> Response:
    """200 once CLIP is loaded and warmed up and the store answers, else 503 with the reason; `towers`
    says where each text tower stands (the multilingual one may still be loading: CLIP answers meanwhile)."""
    wonders = service()
    state = wonders.readiness()
    if not state.ready or wonders.encoder is None:
        return error_response(503, state.code, state.message)
    towers = {name: asdict(tower) for name, tower in wonders.tower_states().items()}
    return jsonify(
        {
            "ready": True,
            "model": wonders.encoder.model_name,
            "device": wonders.encoder.device,
            "towers": towers,
        }
    )


@blp.route("/stats", methods=["GET"])
@blp.response(200, StatsResponse)
def stats() -> Stats:
    """Point count, model, embedding size, counts per class and the last FAISS cross-check."""
    return service().stats()


@blp.route("/classes", methods=["GET"])
@blp.response(200, ClassesResponse)
def classes() -> dict[str, list[ClassInfo]]:
    """The classes with names, prompts and how many images carry each."""
    return {"classes": service().classes()}
