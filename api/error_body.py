"""The bytes of the API's one error shape, `{"error": {"code", "message", "details"?}}`, with no framework.

Flask's handlers (`api/errors.py`) and gunicorn's own answers (`api/gunicorn_errors.py`) both write it
here; nginx's copies in `deploy/nginx/templates/default.conf.template` are checked against the same test
helper (`tests/test_error_shape.py`).
"""

from __future__ import annotations

import json
from typing import Any

CONTENT_TYPE = "application/json"


def error_body(code: str, message: str, details: Any = None) -> bytes:
    """The JSON body of one error: a stable machine `code`, a human `message`, and `details` when given."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    # Compact, sorted and newline-terminated, as Flask's own JSON answers are.
    return (json.dumps({"error": error}, separators=(",", ":"), sort_keys=True) + "\n").encode()
