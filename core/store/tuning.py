"""How a collection is laid out for scale: quantized image vectors, originals on disk, a cluster's shards,
the HNSW graph's degree and build beam.

Both adapters read one `StoreTuning`; the embedded store ignores the cluster fields (it is one shard).
A collection takes its layout when it is created: changing these settings on an existing collection
needs `make ingest ARGS=--recreate` (or, on a server, Qdrant's own `PATCH /collections/images`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from core.settings import Settings

Quantization = Literal["none", "int8"]


@dataclass(frozen=True)
class StoreTuning:
    """Quantization, placement, cluster layout and HNSW graph of a new collection, and the matching search
    params."""

    quantization: Quantization = "none"
    quantile: float = 0.99
    rescore: bool = True
    oversampling: float = 2.0
    vectors_on_disk: bool = False
    shards: int = 1
    replication_factor: int = 1
    write_consistency: int = 1
    hnsw_m: int = 16
    hnsw_ef_construct: int = 128

    @property
    def quantized(self) -> bool:
        """True when the image vectors get an int8 copy that searches go through."""
        return self.quantization != "none"

    @classmethod
    def from_settings(cls, settings: Settings) -> StoreTuning:
        """The tuning the settings ask for."""
        return cls(
            quantization=settings.quantization,
            quantile=settings.quantization_quantile,
            rescore=settings.quantization_rescore,
            oversampling=settings.quantization_oversampling,
            vectors_on_disk=settings.vectors_on_disk,
            shards=settings.qdrant_shards,
            replication_factor=settings.qdrant_replication_factor,
            write_consistency=settings.qdrant_write_consistency,
            hnsw_m=settings.hnsw_m,
            hnsw_ef_construct=settings.hnsw_ef_construct,
        )
