"""What must hold before the service starts (said in one line when it does not), and what it removes when it stops."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def data_dir_problem(data_dir: Path) -> str | None:
    """Why DATA_DIR cannot hold the embedded store and the admin token, or None when it can."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=data_dir, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return (
            f"DATA_DIR ({data_dir}) is not writable ({err.strerror or err}); the embedded store, "
            "thumbnails and the admin token live there. Make it writable, or set DATA_DIR elsewhere."
        )
    return None


def remove_admin_token(data_dir: Path, token: str | None = None) -> None:
    """Remove data/admin.token (only while it still holds `token`, when given): the service stops."""
    from ingest.handoff import TOKEN_FILE

    path = data_dir / TOKEN_FILE
    try:
        if token is None or path.read_text(encoding="utf-8").strip() == token:
            path.unlink()
    except OSError:
        pass
