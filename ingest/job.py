"""An ingest run inside the service, for `make ingest` while the service owns the embedded shard.

This is the service side of the hand-off; `ingest/handoff.py` is the client side."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from core import metrics
from eval.crosscheck import format_report, run_crosscheck, save_report
from ingest.pipeline import run_ingest
from search import SearchService

log = logging.getLogger(__name__)

# The terminal gets one progress line at most this often.
PROGRESS_LOG_S = 5.0
# The run's thread (and the decode threads it starts, which inherit it) yields the CPU to request threads.
BACKGROUND_NICE = 10


class IngestJob:
    """At most one ingest at a time, run in a thread; its state is polled by the CLI."""

    def __init__(self, service: SearchService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"state": "idle"}
        self._thread: threading.Thread | None = None
        self._logged_at = float("-inf")

    def status(self) -> dict[str, Any]:
        """A copy of the job's state: idle, running (with done/total), done (with summary) or failed."""
        with self._lock:
            return dict(self._state)

    def start(self, paths: list[Path], recreate: bool, prune: bool = False) -> bool:
        """Start a run; False when one is already running."""
        with self._lock:
            if self._state.get("state") == "running":
                return False
            self._state = {"state": "running", "phase": "starting", "done": 0, "total": 0}
            metrics.job_started("ingest")
            self._thread = threading.Thread(
                target=self._run, args=(paths, recreate, prune), name="wonders-ingest", daemon=True
            )
            self._thread.start()
            return True

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current run ends (tests)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _progress(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            self._state.update({"phase": phase, "done": done, "total": total})
        metrics.job_progress("ingest", done, total)
        now = time.monotonic()
        if now - self._logged_at >= PROGRESS_LOG_S or done == total:
            self._logged_at = now
            log.info("indexing: %s of %s photos", f"{done:,}", f"{total:,}")

    def _run(self, paths: list[Path], recreate: bool, prune: bool) -> None:
        _lower_this_threads_priority()
        service = self.service
        try:
            encoder, store = service.require_loaded()
            report = run_ingest(
                service.settings,
                encoder,
                store,
                paths or None,
                recreate=recreate,
                prune=prune,
                show_progress=False,
                on_progress=self._progress,
            )
            service.reload_classifier()
            check = run_crosscheck(store, service.settings)
            save_report(check, service.settings.crosscheck_report)
            final = {
                "state": "done",
                "report": report.as_dict(),
                "summary": report.summary(),
                "crosscheck_summary": format_report(check),
            }
        except Exception as err:  # reported to the CLI that asked
            log.exception("ingest in the service failed")
            final = {"state": "failed", "error": f"{type(err).__name__}: {err}"}
        metrics.job_ended("ingest", str(final["state"]))
        with self._lock:
            self._state.update(final)


def _lower_this_threads_priority() -> None:
    """Nice the calling thread (Linux: a thread is a task with its own nice value); elsewhere nothing."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
