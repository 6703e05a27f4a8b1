"""The process's one model thread: every torch call (loading and forward passes) runs on it, in turn,
and the texts of callers waiting together share one forward pass. Every tower submits its work here."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.metrics import MODEL_BATCH_SIZE, MODEL_INFERENCE_SECONDS, MODEL_QUEUE_DEPTH


@dataclass(eq=False)
class Job:
    """Work for the model thread: `work(inputs)`, its answer or error. Jobs with the same `batch_key`
    waiting together are done in one call on all their inputs, whose rows are then split back."""

    work: Callable[[list[Any]], Any]
    inputs: list[Any]
    batch_key: object = None
    tower: str = ""  # which tower's forward pass this is ("image", "text"), for the metrics; "" = none
    # Background work (indexing) yields to everything else: a waiting query goes first.
    background: bool = False
    caller: int = field(default_factory=threading.get_ident)
    result: Any = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class _Passes:
    """What the model thread remembers of the recent passes under one batch key."""

    callers: deque[set[int]] = field(default_factory=lambda: deque(maxlen=2))  # of the last two
    last_s: float = 0.0  # how long the last one took
    ended_at: float = 0.0


class ModelThread:
    """The one thread of a process that runs torch: every model load and forward pass, in turn.

    Why one thread: torch's CPU kernels use OpenMP, and GNU OpenMP keeps a team of worker threads for
    each thread that starts parallel work. Once a process has more such threads than cores (gunicorn's
    request threads each calling the model, or a model loaded on one thread and used on another),
    OpenMP stops spinning between parallel regions and puts its workers to sleep after each one; a
    forward pass is hundreds of short regions, and each then starts by waking a thread. Measured on 2
    cores (ViT-L/14 text tower, one 16-token query): 29 ms while one thread had used torch, 41-48 ms
    once four had, from any of them. Concurrent passes would only fight over the same cores anyway.

    Texts waiting together are encoded in one pass (`batch_key`). When the passes are shared (a busy
    server: the next pass starts straight after the last), it waits a moment for every caller of the
    last two passes to be back, up to a quarter of a pass: otherwise callers settle into alternating
    halves (4 gunicorn threads: passes of 2 texts at 40 ms instead of 4 at 56 ms). A lone caller
    never waits.

    Background jobs (the service indexing its library) are taken only when nothing else waits, so a
    query waits at most for the one background pass in progress; the image tower keeps those passes
    short while queries are being asked (`interactive_within`)."""

    GATHER_SHARE = 0.25  # of the last pass's duration
    GATHER_MAX_S = 0.02

    def __init__(self) -> None:
        self._jobs: deque[Job] = deque()
        self._turn = threading.Condition()
        self._owner_pid = -1  # the process whose thread runs (a forked child starts its own)
        self._thread_id: int | None = None
        self._passes: dict[object, _Passes] = {}  # per batch key
        self._interactive_at = float("-inf")  # when a job that is not background was last queued

    def call(self, work: Callable[[], Any]) -> Any:
        """Run `work()` on the model thread and return what it returns."""
        return self.run(Job(lambda _: work(), []))

    def interactive_within(self, seconds: float) -> bool:
        """Whether a job that is not background work was queued in the last `seconds`."""
        return time.monotonic() - self._interactive_at < seconds

    def run(self, job: Job) -> Any:
        """Queue a job and wait for its answer (its error is raised here)."""
        if not job.background:
            self._interactive_at = time.monotonic()
        if threading.get_ident() == self._thread_id:  # called from a job: do it now
            self._do([job])
            job.done = True
        with self._turn:
            if self._owner_pid != os.getpid():
                self._owner_pid = os.getpid()
                self._jobs.clear()
                thread = threading.Thread(target=self._loop, name="torch-model", daemon=True)
                thread.start()
                self._thread_id = thread.ident
            if not job.done:
                self._jobs.append(job)
                MODEL_QUEUE_DEPTH.set(len(self._jobs))
            self._turn.notify_all()
            while not job.done:
                self._turn.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _next_batch(self) -> list[Job]:
        """The next job, with every job waiting under its batch key; called holding the condition."""
        while not self._jobs:
            self._turn.wait()
        head = next((j for j in self._jobs if not j.background), self._jobs[0])
        key = head.batch_key
        if key is None:
            self._jobs.remove(head)
            MODEL_QUEUE_DEPTH.set(len(self._jobs))
            return [head]
        passes = self._passes.setdefault(key, _Passes())
        busy = time.perf_counter() - passes.ended_at < passes.last_s  # straight after a pass
        if busy and any(len(callers) > 1 for callers in passes.callers):
            expected = len(set().union(*passes.callers))
            self._turn.wait_for(
                lambda: sum(j.batch_key == key for j in self._jobs) >= expected,
                min(self.GATHER_MAX_S, self.GATHER_SHARE * passes.last_s),
            )
        batch = [j for j in self._jobs if j.batch_key == key]
        self._jobs = deque(j for j in self._jobs if j.batch_key != key)
        passes.callers.append({j.caller for j in batch})
        MODEL_QUEUE_DEPTH.set(len(self._jobs))
        return batch

    def _loop(self) -> None:
        while True:
            with self._turn:
                batch = self._next_batch()
            passes = self._passes.setdefault(batch[0].batch_key, _Passes())
            started = time.perf_counter()
            self._do(batch)
            passes.ended_at = time.perf_counter()
            passes.last_s = passes.ended_at - started
            if batch[0].tower:
                MODEL_INFERENCE_SECONDS.labels(tower=batch[0].tower).observe(passes.last_s)
                MODEL_BATCH_SIZE.labels(tower=batch[0].tower).observe(sum(len(j.inputs) for j in batch))
            with self._turn:
                for job in batch:
                    job.done = True
                self._turn.notify_all()

    def _do(self, batch: list[Job]) -> None:
        """Do the jobs together (each alone if that fails), recording answers or errors."""
        try:
            if batch[0].batch_key is None:
                batch[0].result = batch[0].work(batch[0].inputs)
                return
            rows = batch[0].work([x for job in batch for x in job.inputs])
            start = 0
            for job in batch:
                job.result, start = rows[start : start + len(job.inputs)], start + len(job.inputs)
        except Exception as err:
            if len(batch) == 1:
                batch[0].error = err
            else:
                for job in batch:
                    self._do([job])
        except BaseException as err:  # never leave a caller waiting, never let the thread die
            for job in batch:
                if job.result is None:
                    job.error = err


_MODEL_THREAD = ModelThread()


def model_thread() -> ModelThread:
    """The process's model thread (started on first use)."""
    return _MODEL_THREAD
