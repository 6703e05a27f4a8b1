"""A small thread-safe LRU of query -> vector, so repeated queries skip the text tower (or the store)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

import numpy as np

from core.metrics import QUERY_CACHE_LOOKUPS

V = TypeVar("V")


class LruCache(Generic[V]):
    """Least-recently-used values by key, with hit and miss counts (and, when `counted`, the
    query-cache metric)."""

    def __init__(self, size: int, counted: bool = True) -> None:
        self.size = size
        self.counted = counted
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        # The metric's children, looked up once: `labels()` per lookup cost as much as the lookup.
        self._hit_metric = QUERY_CACHE_LOOKUPS.labels(result="hit")
        self._miss_metric = QUERY_CACHE_LOOKUPS.labels(result="miss")

    def get(self, key: Hashable) -> V | None:
        """The cached value, refreshed as most recent, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                if self.counted:
                    self._miss_metric.inc()
                return None
            self._items.move_to_end(key)
            self.hits += 1
            if self.counted:
                self._hit_metric.inc()
            return value

    def put(self, key: Hashable, value: V) -> None:
        """Remember a value, evicting the least recently used."""
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class QueryCache(LruCache[np.ndarray]):
    """Query vectors by key: texts by (tower, model, text), stored photos by ("stored", id)."""
