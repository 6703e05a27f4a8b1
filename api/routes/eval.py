"""The latest evaluation report (`make eval`) and its charts, for the UI's Quality view."""

from __future__ import annotations

from typing import Any

from flask import Response, send_file

from api.context import service
from api.errors import ApiError
from api.openapi import Blueprint
from api.schemas import EvalReportResponse
from eval.published import chart_file, latest_published

blp = Blueprint("eval", __name__, url_prefix="/api/eval", description="Evaluation reports")


@blp.route("/latest", methods=["GET"])
@blp.response(200, EvalReportResponse)
def latest() -> dict[str, Any]:
    """The newest report: its JSON, and the URLs of its charts."""
    published = latest_published(service().settings.data_dir)
    if published is None:
        raise ApiError(404, "no_report", "No evaluation has been run yet: `make eval` writes one.")
    return published


@blp.route("/runs/<run>/charts/<name>", methods=["GET"])
@blp.doc(responses={200: {"description": "a PNG chart", "content": {"image/png": {}}}})
def chart(run: str, name: str) -> Response:
    """One chart of a run, by run and chart name."""
    path = chart_file(service().settings.data_dir, run, name)
    if path is None:
        raise ApiError(404, "not_found", "No such chart.")
    try:
        response = send_file(path, mimetype="image/png", conditional=True, etag=True, max_age=3600)
    except OSError:  # removed since it was found
        raise ApiError(404, "not_found", "No such chart.") from None
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
