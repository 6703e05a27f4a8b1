"""Backups and re-indexes inside the service, which owns the embedded shard while it runs: one at a time,
in a thread, polled by the CLI that handed it over (`ops/handoff.py`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import metrics
from search import SearchService

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (phase, done, total)
Work = Callable[[Progress], str]  # given a progress callback, returns the summary


class OpsJob:
    """At most one backup or re-index at a time; its state is polled by the CLI."""

    def __init__(self, service: SearchService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"state": "idle"}
        self._thread: threading.Thread | None = None

    def status(self, kind: str | None = None) -> dict[str, Any]:
        """A copy of the state (idle, running with phase/done/total, done with summary, failed with error);
        `idle` when asked about another kind than the last job's."""
        with self._lock:
            if kind is not None and self._state.get("job") not in (None, kind):
                return {"state": "idle"}
            return dict(self._state)

    def running(self) -> str | None:
        """The kind of job running now, or None."""
        with self._lock:
            return str(self._state["job"]) if self._state.get("state") == "running" else None

    def start(self, kind: str, work: Work) -> bool:
        """Run `work` in a thread; False when a job is already running."""
        with self._lock:
            if self._state.get("state") == "running":
                return False
            self._state = {"state": "running", "job": kind, "phase": "starting", "done": 0, "total": 0}
            metrics.job_started(kind)
            self._thread = threading.Thread(
                target=self._run, args=(kind, work), name=f"wonders-{kind}", daemon=True
            )
            self._thread.start()
            return True

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current job ends (tests)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, kind: str, work: Work) -> None:
        def progress(phase: str, done: int, total: int) -> None:
            with self._lock:
                self._state.update({"phase": phase, "done": done, "total": total})
            metrics.job_progress(kind, done, total)

        try:
            final: dict[str, Any] = {"state": "done", "summary": work(progress)}
        except Exception as err:  # reported to the CLI that asked
            log.exception("%s in the service failed", kind)
            final = {"state": "failed", "error": f"{type(err).__name__}: {err}"}
        metrics.job_ended(kind, final["state"])
        with self._lock:
            self._state.update(final)


def backup_work(service: SearchService, archive: Path) -> Work:
    """The backup as a job of the service."""
    from ops.backup import summary, write_backup

    def work(progress: Callable[[str, int, int], None]) -> str:
        _, store = service.require_loaded()
        return summary(write_backup(service.settings, store, archive, progress), archive)

    return work


def reindex_work(service: SearchService, model: str, batch_size: int) -> Work:
    """The re-index as a job of the service: the service switches to the new model at the end."""
    from ops.reindex import NothingToDo, load_model, reindex

    def work(progress: Callable[[str, int, int], None]) -> str:
        _, store = service.require_loaded()
        progress("loading the new model", 0, 0)
        encoder = load_model(service.settings, model)
        try:
            report = reindex(
                service.settings, store, encoder, batch_size=batch_size, on_progress=progress, service=service
            )
        except NothingToDo as err:
            return str(err)
        service.stored_cells.forget()  # trained for the new model after the switch, in a big library
        release_old_model()
        return report.summary()

    return work


def cells_work(service: SearchService, cells: int | None) -> Work:
    """The training of the text queries' cells as a job of the service, which uses them at once."""
    from core.cells import train_cells

    def work(progress: Progress) -> str:
        _, store = service.require_loaded()
        service.stored_cells.forget()  # the old cells are dropped at once: walk alone meanwhile
        report = train_cells(store, cells=cells, progress=progress)
        service.stored_cells.forget()
        return report.summary()

    return work


def release_old_model() -> None:
    """Free the model the service switched away from. It was loaded before `gc.freeze()` (see
    `search.service.settle_loaded_objects`), where the collector never looks: unfreeze, collect, and
    freeze what is left again, then hand the freed memory back to the system."""
    import gc

    from core.model import release_freed_memory
    from search.service import settle_loaded_objects

    if gc.get_freeze_count() == 0:  # nothing was frozen (not a service that settled its objects)
        return
    gc.unfreeze()
    settle_loaded_objects()
    release_freed_memory()
