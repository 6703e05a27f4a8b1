"""gunicorn's access log without the polls: /api/ready, /api/health and /api/ingest answered 200 or 503.

The UI polls readiness (503 while the model loads) and the indexing progress; a line per poll would bury
every real request. Other answers to them (a 400, a 500) are still logged."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

POLLED = frozenset({"/api/ready", "/api/health", "/api/ingest"})


class QuietAccessLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, skipping the polls in the access log."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Log the request unless it is a poll."""
        status = str(getattr(resp, "status", ""))[:3]
        if environ.get("PATH_INFO") in POLLED and status in ("200", "503"):
            return
        super().access(resp, req, environ, request_time)
