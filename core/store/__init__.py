"""The vector store: Qdrant embedded (Qdrant Edge) by default, a Qdrant server when QDRANT_URL is set."""

from __future__ import annotations

from core.settings import Settings
from core.store.base import (
    IMAGES,
    PROMPTS,
    CollectionMismatch,
    CollectionStats,
    Hit,
    PointRecord,
    StoreError,
    StoreUnavailable,
    VectorStore,
)
from core.store.tuning import StoreTuning

__all__ = [
    "IMAGES",
    "PROMPTS",
    "CollectionMismatch",
    "CollectionStats",
    "Hit",
    "PointRecord",
    "StoreError",
    "StoreUnavailable",
    "VectorStore",
    "open_store",
]


def open_store(settings: Settings) -> VectorStore:
    """The store the settings describe: the server when `QDRANT_URL` is set, else the embedded shards."""
    if settings.qdrant_url:
        from core.store.server import ServerStore

        return ServerStore(
            settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            timeout_s=settings.qdrant_timeout_s,
            hnsw_ef=settings.hnsw_ef,
            indexing_threshold_kb=settings.indexing_threshold_kb,
            tuning=StoreTuning.from_settings(settings),
        )
    from core.store.embedded import EmbeddedStore

    return EmbeddedStore(
        settings.shard_dir,
        hnsw_ef=settings.hnsw_ef,
        indexing_threshold_kb=settings.indexing_threshold_kb,
        tuning=StoreTuning.from_settings(settings),
    )
