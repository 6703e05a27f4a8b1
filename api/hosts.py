"""The Host names the API answers to: a defence against DNS rebinding.

A web page the user visits can point a name it controls at 127.0.0.1 and then read the API as if it
were its own origin; the only trace is the Host header, which still names the attacker's domain. Every
request naming a host outside `Settings.host_names` (loopback's names and ALLOWED_HOSTS) gets a 421 in the
API's error shape before anything else runs. ALLOWED_HOSTS=* turns the check off (a proxy that checks).
"""

from __future__ import annotations

from flask import Flask, Response, request

from api.errors import error_response
from core.settings import Settings


def host_name(host: str) -> str:
    """The name of a Host header, lower case, without port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def register_host_check(app: Flask, settings: Settings) -> None:
    """Refuse requests whose Host names no configured host (before every other request hook)."""
    allowed = settings.host_names
    if "*" in allowed:
        return

    def _check_host() -> Response | None:
        if host_name(request.headers.get("Host", "")) in allowed:
            return None
        return error_response(
            421,
            "unknown_host",
            "This server does not answer to that host name; add it to ALLOWED_HOSTS to allow it.",
        )

    app.before_request_funcs.setdefault(None, []).insert(0, _check_host)
