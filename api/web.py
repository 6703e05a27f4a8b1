"""The browser UI: the static files of web/ on the same origin as the API (no build step)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, send_from_directory
from werkzeug.routing import PathConverter

from api.errors import ApiError

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class WebPathConverter(PathConverter):
    """A path that is never under /api or /images, so the UI's catch-all route cannot shadow the API.

    Otherwise `GET /api/classify` (a POST-only route) would match the catch-all: a 404, not a 405.
    """

    regex = r"(?!(?:api|images)(?:/|$))[^/].*?"


def register_web(app: Flask, web_dir: Path = WEB_DIR) -> None:
    """Serve index.html at / and the other files of web/ by name (never outside it)."""
    app.url_map.converters["webpath"] = WebPathConverter

    @app.get("/")
    def index() -> Response:
        return _send(web_dir, "index.html", cache="no-cache")

    @app.get("/<webpath:name>")
    def asset(name: str) -> Response:
        return _send(web_dir, name, cache="no-cache")


def _send(web_dir: Path, name: str, cache: str) -> Response:
    if not (web_dir / "index.html").exists():
        raise ApiError(404, "not_found", "The web UI is not installed (web/ is missing).")
    # send_from_directory refuses any name that would leave web_dir (safe_join), answering 404.
    response = send_from_directory(web_dir, name, max_age=0)
    response.headers["Cache-Control"] = cache
    if name.endswith(".html"):
        response.headers["Content-Security-Policy"] = CSP
    return response
