"""Many searches at once, or one switch of model and collection alone: a reader-writer lock.

Every verb of the search service reads under it; a re-index switches the store's collections and the
service's model under its writing side, so no answer mixes a query vector of one model with the vectors
of another. Writers go first: a steady stream of searches cannot hold a switch off for ever.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    """Shared reading (re-entrant per thread), exclusive writing, writers preferred."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self._depth = threading.local()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the lock shared; a thread already reading may read again (a verb calling a verb)."""
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            with self._turn:
                while self._writing or self._writers_waiting:
                    self._turn.wait()
                self._readers += 1
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            if depth == 0:
                with self._turn:
                    self._readers -= 1
                    if self._readers == 0:
                        self._turn.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the lock alone, once every reader has left."""
        with self._turn:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._turn.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._turn:
                self._writing = False
                self._turn.notify_all()
