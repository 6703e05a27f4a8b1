"""Handing an ingest to the running service, which owns the embedded shard while it runs.

The service writes a random token to `data/admin.token` when it starts; whoever can read the data folder
may ask it, over loopback, to ingest. The CLI follows the job's progress and prints the same summary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

TOKEN_FILE = "admin.token"
TOKEN_HEADER = "X-Wonders-Admin-Token"


@dataclass
class RunningService:
    """A Wonders service on this machine that accepted our token."""

    url: str
    token: str

    def _headers(self) -> dict[str, str]:
        return {TOKEN_HEADER: self.token}

    def status(self) -> dict[str, Any]:
        """The service's ingest job state."""
        response = requests.get(f"{self.url}/api/admin/ingest", headers=self._headers(), timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def start(self, paths: list[Path], recreate: bool, prune: bool = False) -> dict[str, Any]:
        """Ask the service to ingest; if a job is already running we follow that one."""
        body = {"paths": [str(p.resolve()) for p in paths], "recreate": recreate, "prune": prune}
        response = requests.post(
            f"{self.url}/api/admin/ingest", json=body, headers=self._headers(), timeout=10
        )
        if response.status_code not in (202, 409):
            raise RuntimeError(
                f"the service refused the ingest: {response.status_code} {response.text[:300]}"
            )
        return self.status()

    def follow(self, show_progress: bool = True, poll_s: float = 0.5) -> dict[str, Any]:
        """Poll until the job ends, drawing a progress bar; returns the final status."""
        bar = None
        while True:
            state = self.status()
            if state.get("total") and show_progress:
                if bar is None:
                    bar = tqdm(total=state["total"], desc="encoding (in the service)", unit="img")
                bar.n = state.get("done", 0)
                bar.refresh()
            if state.get("state") in ("done", "failed"):
                if bar is not None:
                    bar.close()
                return state
            time.sleep(poll_s)


def find_service(data_dir: Path, port: int) -> RunningService | None:
    """The running service that owns `data_dir`, or None when there is none."""
    try:
        token = (data_dir / TOKEN_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    service = RunningService(url=f"http://127.0.0.1:{port}", token=token)
    try:
        service.status()
    except (requests.RequestException, ValueError):
        return None
    return service
