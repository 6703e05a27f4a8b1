"""One JSON error shape for every failure: {"error": {"code": "...", "message": "..."}}.

`ApiError` is raised by the HTTP layer itself; the search layer raises its own errors (`search/errors.py`),
mapped to their HTTP status here, in `HTTP_STATUS`, and nowhere else. `register_error_handlers` turns
those, every HTTP exception (404, 405, 413, validation) and unexpected exceptions into that shape.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from api.error_body import CONTENT_TYPE, error_body
from core.store import StoreUnavailable
from search import errors as search_errors

try:  # what gunicorn raises while the app reads a body the client framed badly or cut short
    from gunicorn.http.errors import NoMoreData, ParseException

    CLIENT_BODY_ERRORS: tuple[type[BaseException], ...] = (ParseException, NoMoreData)
except ImportError:  # served by another WSGI server
    CLIENT_BODY_ERRORS = ()

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "bad_request",
    429: "too_many_requests",
    431: "headers_too_large",
    500: "internal_error",
    503: "not_ready",
}


# The HTTP status of each error of the search layer (the most specific class wins).
HTTP_STATUS: dict[type[search_errors.SearchError], int] = {
    search_errors.NotReady: 503,
    search_errors.StoreDown: 503,
    search_errors.ModelMismatch: 503,
    search_errors.UnknownClass: 400,
    search_errors.EmptyQuery: 400,
    search_errors.UnknownImage: 404,
    search_errors.FileMissing: 404,
    search_errors.UnsupportedUpload: 415,
    search_errors.TowerOff: 400,
    search_errors.StoreBroken: 503,
    search_errors.Busy: 503,
    search_errors.BadQuery: 400,
    search_errors.TooManyExamples: 400,
}


def http_status(error: search_errors.SearchError) -> int:
    """The HTTP status for an error of the search layer."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


class ApiError(Exception):
    """An error the client should see, with its HTTP status, a stable code and a human message."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    """The one error response of the API."""
    response = Response(error_body(code, message, details), status=status, mimetype=CONTENT_TYPE)
    if status == 503:
        response.headers["Retry-After"] = "5"
    return response


def validation_message(messages: Any) -> str:
    """Flatten webargs' {location: {field: [msg]}} into one readable sentence (no Python lists)."""
    parts = []
    if isinstance(messages, dict):
        for location, fields in messages.items():
            if isinstance(fields, dict):
                for field, problems in fields.items():
                    name = "body" if field == "_schema" else str(field)
                    parts.append(f"{name}: {_readable(problems)}")
            else:
                parts.append(f"{'body' if location == 'json' else location}: {_readable(fields)}")
    return "invalid parameters: " + ", ".join(parts) if parts else "invalid parameters"


def _readable(problems: Any) -> str:
    """Validation messages (a string, a list, or nested per item or key) as plain text."""
    if isinstance(problems, list | tuple):
        return "; ".join(_readable(p) for p in problems)
    if isinstance(problems, dict):
        return "; ".join(f"{key}: {_readable(value)}" for key, value in problems.items())
    return str(problems)


def handle_http_exception(error: HTTPException) -> Response:
    """Werkzeug/Flask/webargs HTTP errors in our shape (validation errors become 400)."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    if "messages" in data:
        return error_response(
            400, "invalid_parameter", validation_message(data["messages"]), data["messages"]
        )
    if status == 413:
        return error_response(413, "payload_too_large", "The upload is larger than this server accepts.")
    if status == 404:
        return error_response(404, "not_found", "No such resource.")
    if status == 405:
        response = error_response(405, "method_not_allowed", "This method is not allowed on this resource.")
        allowed = getattr(error, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)  # required on a 405 (RFC 9110)
        return response
    message = data.get("message") or error.description or error.name
    return error_response(status, _CODES.get(status, "http_error"), str(message))


def register_error_handlers(app: Flask) -> None:
    """Install the handlers; call after the OpenAPI extension so ours win."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error.status, error.code, error.message, error.details)

    @app.errorhandler(search_errors.SearchError)
    def _search_error(error: search_errors.SearchError) -> Response:
        return error_response(http_status(error), error.code, error.message, error.details)

    @app.errorhandler(StoreUnavailable)
    def _store_unavailable(error: StoreUnavailable) -> Response:
        log.warning("store unavailable: %s", error)
        return error_response(
            503, "store_unavailable", "The vector store is not reachable right now; retry soon."
        )

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        if isinstance(error, HTTPException):
            return handle_http_exception(error)
        if isinstance(error, CLIENT_BODY_ERRORS):  # e.g. a chunked body with a bad chunk size
            log.info("malformed request body: %s", error)
            return error_response(400, "bad_request", "The request body is malformed or incomplete.")
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on the server.")

    app.register_error_handler(HTTPException, handle_http_exception)
