"""A circuit breaker around any VectorStore: a store that keeps failing is failed fast until it answers.

A hung Qdrant server makes every store call wait for its timeout (QDRANT_TIMEOUT_S); with every request
thread waiting, nothing else is answered. After `failures` consecutive outages (StoreUnavailable, the
adapters' word for timeouts and refused connections) the breaker opens: every call fails at once with
StoreUnavailable (a 503) for `cooldown_s`. Then the store is probed in the background (`ping`, half-open)
while callers still fail fast: no request waits out a timeout for the probe. If it answers the breaker
closes, if not it opens again for another cooldown. Answers that are not outages (a missing collection,
damaged files, a model mismatch) pass through untouched and count as the store answering.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from core.store.base import CollectionStats, Hit, PointRecord, StoreUnavailable, VectorStore

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class BreakerOpen(StoreUnavailable):
    """The breaker is open: the store failed repeatedly and is not asked until the cooldown ends."""


class CircuitBreakerStore(VectorStore):
    """`inner` behind a circuit breaker; every other attribute is the inner store's."""

    def __init__(
        self,
        inner: VectorStore,
        failures: int = 3,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        spawn: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """`spawn` runs the background probe (a daemon thread unless given: tests pass a direct call)."""
        self.inner = inner
        self._spawn = spawn or _in_a_thread
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._last_error = ""

    @property
    def state(self) -> str:
        """closed (calls go through), open (calls fail fast) or half_open (one probe in flight)."""
        with self._lock:
            return self._state

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes this class lacks (an adapter's own, such as `root` or `client`).
        return getattr(self.__dict__["inner"], name)

    def _admit(self) -> None:
        with self._lock:
            if self._state == CLOSED:
                return
            probe = self._state == OPEN and self._clock() - self._opened_at >= self.cooldown_s
            if probe:
                self._state = HALF_OPEN
            refusal = BreakerOpen(
                f"the store failed {self.failures} times in a row ({self._last_error}); "
                f"not asked again for {self.cooldown_s:g} s"
            )
        if probe:
            self._spawn(self._probe)
        raise refusal

    def _probe(self) -> None:
        """Ask the store once (half-open); its answer closes the breaker, an outage opens it again."""
        try:
            self.inner.ping()
        except StoreUnavailable as err:
            self._record(err)
        except BaseException:
            self._record(None)  # it answered, with an error of another kind
        else:
            self._record(None)

    def _record(self, outage: StoreUnavailable | None) -> None:
        with self._lock:
            if outage is None:
                self._state, self._consecutive = CLOSED, 0
                return
            self._consecutive += 1
            self._last_error = str(outage)[:200]
            if self._state == HALF_OPEN or self._consecutive >= self.failures:
                self._state, self._opened_at = OPEN, self._clock()

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._admit()
        try:
            result = method(*args, **kwargs)
        except BreakerOpen:
            raise
        except StoreUnavailable as err:
            self._record(err)
            raise
        except BaseException:
            self._record(None)  # the store answered, with an error of another kind
            raise
        self._record(None)
        return result

    # -- VectorStore, each call through the breaker --------------------------------------------------
    def ensure_collection(self, name: str, meta: dict[str, Any], recreate: bool = False) -> None:
        """See VectorStore."""
        self._call(self.inner.ensure_collection, name, meta, recreate)

    def collection_meta(self, name: str) -> dict[str, Any] | None:
        """See VectorStore."""
        return self._call(self.inner.collection_meta, name)

    def upsert(self, name: str, points: Sequence[PointRecord]) -> None:
        """See VectorStore."""
        self._call(self.inner.upsert, name, points)

    def set_payloads(self, name: str, updates: Sequence[tuple[Sequence[str], dict[str, Any]]]) -> None:
        """See VectorStore."""
        self._call(self.inner.set_payloads, name, updates)

    def index_integer_field(self, name: str, field: str) -> None:
        """See VectorStore."""
        self._call(self.inner.index_integer_field, name, field)

    def query(
        self,
        name: str,
        vector: np.ndarray,
        limit: int,
        offset: int = 0,
        label: str | None = None,
        min_score: float | None = None,
        exclude_id: str | None = None,
        exact: bool = False,
        hnsw_ef: int | None = None,
        cells: Sequence[int] | None = None,
    ) -> list[Hit]:
        """See VectorStore."""
        return self._call(
            self.inner.query, name, vector, limit, offset, label, min_score, exclude_id, exact, hnsw_ef, cells
        )

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[PointRecord]:
        """See VectorStore."""
        return self._call(self.inner.retrieve, name, ids, with_vectors)

    def count(self, name: str, label: str | None = None) -> int:
        """See VectorStore."""
        return self._call(self.inner.count, name, label)

    def scroll(self, name: str, with_vectors: bool = False, batch: int = 256) -> Iterator[PointRecord]:
        """See VectorStore (admitted once, when the iteration starts)."""
        self._admit()
        try:
            yield from self.inner.scroll(name, with_vectors, batch)
        except StoreUnavailable as err:
            self._record(err)
            raise
        self._record(None)

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """See VectorStore."""
        self._call(self.inner.delete, name, ids)

    def stats(self, name: str) -> CollectionStats:
        """See VectorStore."""
        return self._call(self.inner.stats, name)

    def optimize(self, name: str) -> None:
        """See VectorStore."""
        self._call(self.inner.optimize, name)

    def ping(self) -> None:
        """See VectorStore."""
        self._call(self.inner.ping)

    def admit(self) -> None:
        """BreakerOpen while the breaker is open or probing (starting the probe when it is due)."""
        self._admit()

    def close(self) -> None:
        """Close the inner store (never refused by the breaker)."""
        self.inner.close()

    def collection_target(self, name: str) -> str:
        """The inner store's answer, through the breaker."""
        return self._call(self.inner.collection_target, name)

    def switch_aliases(self, targets: dict[str, str]) -> None:
        """The inner store's switch, through the breaker."""
        self._call(self.inner.switch_aliases, targets)

    def drop_collection(self, name: str) -> None:
        """The inner store's drop, through the breaker."""
        self._call(self.inner.drop_collection, name)

    def list_collections(self) -> list[str]:
        """The inner store's collections, through the breaker."""
        return self._call(self.inner.list_collections)

    def label_counts(self, name: str, labels: Sequence[str]) -> dict[str, int]:
        """See VectorStore."""
        return self._call(self.inner.label_counts, name, labels)


def _in_a_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="store-breaker-probe", daemon=True).start()
