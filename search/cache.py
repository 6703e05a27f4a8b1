"""A small thread-safe LRU of text -> vector, so repeated queries skip the text tower."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np

from core.metrics import QUERY_CACHE_LOOKUPS


class QueryCache:
    """Least-recently-used vectors by key, with hit and miss counts."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> np.ndarray | None:
        """The cached vector, refreshed as most recent, or None."""
        with self._lock:
            vector = self._items.get(key)
            if vector is None:
                self.misses += 1
                QUERY_CACHE_LOOKUPS.labels(result="miss").inc()
                return None
            self._items.move_to_end(key)
            self.hits += 1
            QUERY_CACHE_LOOKUPS.labels(result="hit").inc()
            return vector

    def put(self, key: Hashable, vector: np.ndarray) -> None:
        """Remember a vector, evicting the least recently used."""
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
