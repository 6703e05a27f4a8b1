"""What the service does by itself when it starts: fill an empty library, then index it in the background.

`make run` serves at once. Once the model is loaded this thread (in the one process that owns the
embedded shard) downloads the landmark library into an empty library when FETCH_DATASET_IF_EMPTY allows
it, and indexes the library with the service's `IngestJob`, so results grow as photos land. The UI and
`GET /api/ingest` read `status()`; the terminal gets a progress line every few seconds."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import Settings
from ingest.job import IngestJob
from ingest.scan import library_is_empty
from search import SearchService

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent

# While the download runs, what has landed is indexed at most this often.
INDEX_EVERY_S = 5.0
# The download at start gives up quickly when the network is not there (`make dataset` retries longer).
FETCH_ARGS = ["--retries", "1", "--max-wait", "5", "--delay", "0.3"]


@dataclass
class FetchOutcome:
    """How the download of the landmark library ended: ok, or the one line that says why not."""

    ok: bool
    message: str = ""


def fetch_dataset(settings: Settings, done: threading.Event) -> FetchOutcome:
    """Run `python -m dataset` into the library (its own process, its own output); `done` is set at the end."""
    command = [
        sys.executable,
        "-m",
        "dataset",
        "--images-dir",
        str(settings.images_dir),
        "--wikimedia-api-url",
        settings.wikimedia_api_url,
        *FETCH_ARGS,
    ]
    try:
        finished = subprocess.run(command, check=False, timeout=3600, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired) as err:
        return FetchOutcome(False, f"the download could not run ({type(err).__name__})")
    finally:
        done.set()
    if finished.returncode != 0:
        return FetchOutcome(False, "the landmark library could not be downloaded (no network?)")
    return FetchOutcome(True)


Fetcher = Callable[[Settings, threading.Event], FetchOutcome]


class LibraryIndexer:
    """The service's own first-run work; see the module docstring."""

    def __init__(self, service: SearchService, job: IngestJob, fetcher: Fetcher = fetch_dataset) -> None:
        self.service = service
        self.job = job
        self.fetcher = fetcher
        self._lock = threading.Lock()
        self._fetch: dict[str, Any] = {"state": "off"}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the work in a daemon thread (it first waits for the model)."""
        self._thread = threading.Thread(target=self._run, name="wonders-indexer", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the first-run work ends (tests)."""
        if self._thread is not None:
            self._thread.join(timeout)
        self.job.wait(timeout)

    def status(self) -> dict[str, Any]:
        """What anyone may see: the indexing job's state and progress, and the download's state."""
        job = self.job.status()
        public: dict[str, Any] = {k: job[k] for k in ("state", "phase", "done", "total") if k in job}
        if "report" in job:
            public["new"] = job["report"].get("new", 0)
        with self._lock:
            public["fetch"] = dict(self._fetch)
        return public

    def _set_fetch(self, **state: Any) -> None:
        with self._lock:
            self._fetch = state

    def _run(self) -> None:
        service, settings = self.service, self.service.settings
        service.wait_loaded()
        if service.load_error or service.encoder is None:
            return
        if settings.fetch_dataset_if_empty and library_is_empty(settings.images_dir):
            self._fetch_while_indexing(settings)
        self._index()

    def _fetch_while_indexing(self, settings: Settings) -> None:
        """Download the landmark library, indexing what has landed every few seconds."""
        log.info(
            "The library %s is empty: downloading the landmark library in the background.",
            settings.images_dir,
        )
        self._set_fetch(state="running")
        done = threading.Event()
        outcome: list[FetchOutcome] = []
        fetcher = threading.Thread(
            target=lambda: outcome.append(self.fetcher(settings, done)), name="wonders-fetch", daemon=True
        )
        fetcher.start()
        while not done.wait(INDEX_EVERY_S):
            if not library_is_empty(settings.images_dir):
                self._index()
        fetcher.join()
        result = outcome[0] if outcome else FetchOutcome(False, "the download stopped")
        if result.ok:
            self._set_fetch(state="done")
        else:
            log.warning(
                "%s; copy photos into %s/ or run `make dataset` later.", result.message, settings.images_dir
            )
            self._set_fetch(state="failed", message=result.message)

    def _index(self) -> None:
        """One ingest run over the library, waiting for it; a run already going (a hand-off) is awaited."""
        while not self.job.start([self.service.settings.images_dir], recreate=False):
            time.sleep(0.5)
        self.job.wait()
