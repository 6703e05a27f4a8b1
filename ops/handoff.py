"""The client side of handing a backup or a re-index to the running service (see `ingest/handoff.py`)."""

from __future__ import annotations

import sys
import time
from typing import Any

import requests
from tqdm import tqdm

from ingest.handoff import TOKEN_HEADER, RunningService


def run_in_service(service: RunningService, job: str, body: dict[str, Any], show_progress: bool) -> int:
    """Start `job` (backup, reindex) in the service, follow it to its end; the exit code of the CLI."""
    url = f"{service.url}/api/admin/{job}"
    headers = {TOKEN_HEADER: service.token}
    response = requests.post(url, json=body, headers=headers, timeout=30)
    if response.status_code == 409:
        print(f"error: {response.json().get('error', {}).get('message', response.text)}", file=sys.stderr)
        return 1
    if response.status_code != 202:
        print(f"error: the service refused: {response.status_code} {response.text[:300]}", file=sys.stderr)
        return 1
    final = follow(url, headers, show_progress)
    if final.get("state") == "failed":
        print(f"error: {final.get('error')}", file=sys.stderr)
        return 1
    print(final.get("summary", ""))
    return 0


def follow(url: str, headers: dict[str, str], show_progress: bool, poll_s: float = 0.5) -> dict[str, Any]:
    """Poll the job until it ends, drawing its progress; the final state."""
    bar = None
    while True:
        state: dict[str, Any] = requests.get(url, headers=headers, timeout=30).json()
        if show_progress and state.get("total"):
            if bar is None or bar.desc != state.get("phase"):
                if bar is not None:
                    bar.close()
                bar = tqdm(total=state["total"], desc=state.get("phase"), unit="item")
            bar.total = state["total"]
            bar.n = state.get("done", 0)
            bar.refresh()
        if state.get("state") in ("done", "failed"):
            if bar is not None:
                bar.close()
            return state
        time.sleep(poll_s)
