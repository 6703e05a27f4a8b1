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

    def start(
        self, paths: list[Path], recreate: bool, prune: bool = False, poll_s: float = 0.5
    ) -> dict[str, Any]:
        """Ask the service to ingest; while it runs another job (its own indexing at start), wait for that
        one to end first, so the paths asked for are ingested by a run that started after they were."""
        body = {"paths": [str(p.resolve()) for p in paths], "recreate": recreate, "prune": prune}
        said = False
        while True:
            response = requests.post(
                f"{self.url}/api/admin/ingest", json=body, headers=self._headers(), timeout=10
            )
            if response.status_code == 202:
                return self.status()
            if response.status_code != 409:
                raise RuntimeError(
                    f"the service refused the ingest: {response.status_code} {response.text[:300]}"
                )
            if not said:
                print("The service is indexing already; this run starts when that one ends.")
                said = True
            time.sleep(poll_s)

    def crosscheck(self, samples: int, k: int) -> dict[str, Any]:
        """Ask the service to rerun the FAISS cross-check on its store; its report and summary."""
        response = requests.post(
            f"{self.url}/api/admin/crosscheck",
            json={"samples": samples, "k": k},
            headers=self._headers(),
            timeout=600,
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"the service refused the cross-check: {response.status_code} {response.text[:300]}"
            )
        result: dict[str, Any] = response.json()
        return result

    def follow(self, show_progress: bool = True, poll_s: float = 0.5) -> dict[str, Any]:
        """Poll until the job ends, drawing a progress bar; returns the final status."""
        bar = None
        while True:
            state = self.status()
            if state.get("total") and show_progress:
                done = state.get("done", 0)
                if bar is None:
                    # Started at what is already done, so the rate counts only what we see happen.
                    bar = tqdm(
                        total=state["total"], initial=done, desc="encoding (in the service)", unit="img"
                    )
                bar.total = state["total"]
                bar.update(max(0, done - bar.n))
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
