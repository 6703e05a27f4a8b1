"""Unknown query parameters are a 400 on every API endpoint, also those that take no parameters at all.

Endpoints that declare query arguments refuse unknown ones through their schema (`StrictSchema`); this
hook covers the others (`/api/stats?x=1`, `/api/images/<id>?foo=1`, `/api/classify?k=5`)."""

from __future__ import annotations

from flask import Flask, current_app, request

from api.errors import ApiError


def refuse_unknown_query(app: Flask) -> None:
    """Install the check for every /api endpoint without declared query arguments."""

    @app.before_request
    def _refuse() -> None:
        if not request.args or not request.path.startswith("/api/") or request.endpoint is None:
            return
        view = current_app.view_functions.get(request.endpoint)
        if view is None or _declares_query(view):
            return
        names = ", ".join(sorted(request.args.keys()))[:200]
        raise ApiError(
            400,
            "invalid_parameter",
            f"invalid parameters: this endpoint takes no query parameters ({names}).",
        )


def _declares_query(view: object) -> bool:
    """Whether flask-smorest recorded query (querystring) arguments for the view."""
    apidoc = getattr(view, "_apidoc", {}) or {}
    parameters = apidoc.get("arguments", {}).get("parameters", [])
    return any(p.get("in", p.get("location")) in ("query", "querystring") for p in parameters)
