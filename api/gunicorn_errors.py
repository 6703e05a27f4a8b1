"""gunicorn's own answers in the API's error shape.

gunicorn answers requests it cannot parse (bad request line, headers too large, URL over
limit_request_line, bad chunked framing) itself, before the app, with an HTML page that echoes the request.
`install()` replaces that page by the API's JSON error shape, never echoing the request. Call it in
gunicorn's master, before the fork (api/gunicorn_conf.py does).
"""

from __future__ import annotations

import gunicorn.util

from api.error_body import CONTENT_TYPE, error_body

# Every status gunicorn answers itself, with the code and message the client gets.
GUNICORN_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request is not valid HTTP."),
    403: ("forbidden", "Request forbidden."),
    414: ("uri_too_long", "The URL is too long; send long text queries with POST /api/search."),
    417: ("expectation_failed", "The Expect header cannot be met."),
    431: ("headers_too_large", "The request headers are too large."),
    501: ("not_implemented", "This transfer coding is not supported."),
}
FALLBACK = ("internal_error", "Something went wrong on the server.")


def error_response_bytes(status: int, reason: str) -> bytes:
    """The whole HTTP response gunicorn sends for `status` (head and JSON body); the connection closes."""
    code, message = GUNICORN_ERRORS.get(status, FALLBACK)
    body = error_body(code, message)
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {CONTENT_TYPE}\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _write_json_error(sock: object, status_int: int, reason: str, mesg: str) -> None:
    # gunicorn's signature; `mesg` (which may echo the request) is deliberately not sent.
    gunicorn.util.write_nonblock(sock, error_response_bytes(status_int, reason))


def install() -> None:
    """Make gunicorn write its own errors in the API's JSON shape."""
    gunicorn.util.write_error = _write_json_error
