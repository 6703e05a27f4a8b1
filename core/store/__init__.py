"""The vector store: Qdrant embedded (Qdrant Edge) by default, a Qdrant server when QDRANT_URL is set.

This is the one place that maps a kind of store (`Settings.store_kind`) to its adapter and to what the rest
of Wonders must know about it (`StoreBackend`). A new backend is one adapter module beside these, defining
`from_settings(settings)`, and one line in `BACKENDS`; core/settings.py gets the settings that choose it
(its name in `StoreKind`, its rule in `Settings.store_kind`, its connection fields).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings, StoreKind
from core.store.base import (
    CELL_FIELD,
    CELLS,
    IMAGES,
    PROMPTS,
    CollectionMismatch,
    CollectionMissing,
    CollectionStats,
    Hit,
    PointRecord,
    StoreDamaged,
    StoreError,
    StoreUnavailable,
    VectorStore,
)

__all__ = [
    "BACKENDS",
    "CELLS",
    "CELL_FIELD",
    "IMAGES",
    "PROMPTS",
    "CollectionMismatch",
    "CollectionMissing",
    "CollectionStats",
    "Hit",
    "PointRecord",
    "StoreBackend",
    "StoreDamaged",
    "StoreError",
    "StoreKind",
    "StoreUnavailable",
    "VectorStore",
    "open_scratch_store",
    "open_store",
    "store_backend",
]


@dataclass(frozen=True)
class StoreBackend:
    """One kind of store: where its adapter lives, and what its kind means for the processes around it."""

    kind: StoreKind
    module: str  # the adapter's module, imported only when a store of this kind is opened
    # The store belongs to the process that opened it: the service runs one gunicorn worker, writes the
    # admin token, and `make ingest` hands its work to the running service instead of opening the store.
    single_process: bool
    # Calls cross a network and can hang until their timeout: they go through a circuit breaker
    # (core/store/breaker.py). An in-process shard answers or fails at once, and needs none.
    remote: bool = False


BACKENDS: dict[StoreKind, StoreBackend] = {
    backend.kind: backend
    for backend in (
        StoreBackend("embedded", "core.store.embedded", single_process=True),
        StoreBackend("server", "core.store.server", single_process=False, remote=True),
    )
}


def store_backend(settings: Settings) -> StoreBackend:
    """The backend the settings choose (`settings.store_kind`)."""
    return BACKENDS[settings.store_kind]


def open_store(settings: Settings) -> VectorStore:
    """The store the settings describe: the server when `QDRANT_URL` is set, else the embedded shards.

    A remote store comes behind a circuit breaker, so a hung server is failed fast."""
    backend = store_backend(settings)
    adapter = importlib.import_module(backend.module)
    store = adapter.from_settings(settings)
    if not isinstance(store, VectorStore):
        raise TypeError(
            f"{adapter.__name__}.from_settings returned {type(store).__name__}, not a VectorStore"
        )
    if backend.remote:
        from core.store.breaker import CircuitBreakerStore

        return CircuitBreakerStore(
            store, failures=settings.store_breaker_failures, cooldown_s=settings.store_breaker_cooldown_s
        )
    return store


def open_scratch_store(folder: Path, hnsw_ef: int) -> VectorStore:
    """A private, in-process store in `folder` that builds HNSW at any size (to measure the approximate
    index on a copy, whatever store the settings choose); close it before removing `folder`."""
    from core.store.embedded import EmbeddedStore

    return EmbeddedStore(folder, hnsw_ef=hnsw_ef, indexing_threshold_kb=1)
