"""gunicorn's access log without the polls: a 200 from /api/ready, /api/health or /api/ingest is not logged.

The UI polls readiness and the indexing progress; a line per poll would bury every real request."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

POLLED = frozenset({"/api/ready", "/api/health", "/api/ingest"})


class QuietAccessLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, skipping successful polls in the access log."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Log the request unless it is a successful poll."""
        if environ.get("PATH_INFO") in POLLED and str(getattr(resp, "status", "")).startswith("200"):
            return
        super().access(resp, req, environ, request_time)
