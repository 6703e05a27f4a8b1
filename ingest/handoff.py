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
# How long a client waits for a service that stopped answering (a worker restarting loads its model).
RECONNECT_S = 120.0


class ServiceGone(RuntimeError):
    """The service stopped answering during the run and did not come back; the message says what to do."""


@dataclass
class RunningService:
    """A Wonders service on this machine that accepted our token."""

    url: str
    token: str
    data_dir: Path | None = None
    job: dict[str, Any] | None = None  # what was asked, to ask again after a restart

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
        self.job = body
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

    def _submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Ask for the job once more (a restarted service lost it); 409: it has one running already."""
        response = requests.post(
            f"{self.url}/api/admin/ingest", json=body, headers=self._headers(), timeout=10
        )
        if response.status_code not in (202, 409):
            raise RuntimeError(
                f"the service refused the ingest: {response.status_code} {response.text[:300]}"
            )
        return self.status()

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

    def _reconnect(self, poll_s: float) -> dict[str, Any]:
        """The job's state from the service once it answers again (re-reading its new token), with the
        job asked again when the restarted service no longer has it; ServiceGone after RECONNECT_S."""
        deadline = time.monotonic() + RECONNECT_S
        while time.monotonic() < deadline:
            time.sleep(poll_s)
            if self.data_dir is not None:
                try:
                    self.token = (self.data_dir / TOKEN_FILE).read_text(encoding="utf-8").strip()
                except OSError:
                    continue  # not written yet: the service is still starting
            try:
                state = self.status()
                if state.get("state") == "idle" and self.job is not None:
                    print("The service restarted and lost the run: asking it again.")
                    state = self._submit(self.job)
                return state
            except (requests.RequestException, ValueError):
                continue
        raise ServiceGone(
            f"the service at {self.url} stopped answering during the ingest and did not come back; "
            "every photo encoded so far is kept: start it again (make run) and rerun `make ingest`"
        )

    def follow(self, show_progress: bool = True, poll_s: float = 0.5) -> dict[str, Any]:
        """Poll until the job ends, drawing a progress bar; returns the final status.

        A service that stops answering (restarted, or its worker: a new token) is waited for, and
        re-asked when the run was lost; ServiceGone when it never comes back."""
        bar = None
        while True:
            try:
                state = self.status()
            except (requests.RequestException, ValueError):
                state = self._reconnect(poll_s)
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
    service = RunningService(url=f"http://127.0.0.1:{port}", token=token, data_dir=data_dir)
    try:
        service.status()
    except (requests.RequestException, ValueError):
        return None
    return service
