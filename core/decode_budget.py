"""A memory budget shared by concurrent image decodes: each reserves what it will cost, or waits, or is refused.

Decoding an upload costs memory in proportion to its pixels, not its bytes: a 94 KB PNG of 50 megapixels
takes hundreds of megabytes while it is converted. Each decode reserves its estimated cost here first;
while the others' reservations leave too little, it waits (at most `wait_s`), then `DecodeBusy` is raised
(a 503 with Retry-After for the client). A decode larger than the whole budget runs alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class DecodeBusy(RuntimeError):
    """The decode budget stayed taken for longer than a request may wait."""


class DecodeBudget:
    """`total` bytes shared by the decodes in flight in this process."""

    def __init__(self, total: int, wait_s: float = 10.0) -> None:
        self.total = total
        self.wait_s = wait_s
        self._used = 0
        self._cond = threading.Condition()

    @property
    def used(self) -> int:
        """Bytes reserved right now."""
        with self._cond:
            return self._used

    @contextmanager
    def reserve(self, cost: int) -> Iterator[None]:
        """Hold `cost` bytes (at most the whole budget) for the duration of the block, or DecodeBusy."""
        cost = max(0, min(cost, self.total))
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while self._used + cost > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DecodeBusy(f"{cost:,} bytes needed, {self.total - self._used:,} free")
                self._cond.wait(left)
            self._used += cost
        try:
            yield
        finally:
            with self._cond:
                self._used -= cost
                self._cond.notify_all()
