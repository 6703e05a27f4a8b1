"""The human-readable API page: Swagger UI at /docs, its assets from the swagger-ui-bundle package.

Nothing loads from a CDN: the page, its script and Swagger UI's files are all served here, under a CSP
that allows only this origin."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle  # type: ignore[import-untyped]
from flask import Flask, Response, send_from_directory

SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
INIT_DIR = Path(__file__).resolve().parent / "docs_assets"
# Swagger UI sets inline styles from its script; scripts stay this origin's only.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Wonders API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"})


def register_docs(app: Flask) -> None:
    """Serve the API page and its assets."""

    @app.get("/docs")
    def api_docs() -> Response:
        return _secured(Response(PAGE, mimetype="text/html"))

    @app.get("/docs/init.js")
    def api_docs_init() -> Response:
        return _secured(send_from_directory(INIT_DIR, "init.js", max_age=3600))

    @app.get("/docs/assets/<name>")
    def api_docs_asset(name: str) -> Response:
        if name not in ASSETS:
            return _secured(Response(status=404))
        return _secured(send_from_directory(SWAGGER_DIR, name, max_age=3600))


def _secured(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response
