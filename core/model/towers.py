"""What the rest of Wonders needs of a model: an image tower and a text tower, and the identity a
collection is built with.

Both towers embed into one space, the image space the collection was built in, as unit float32 rows.
CLIP gives one of each (`core.model.clip`); a text tower trained into CLIP's image space (a
multilingual one) answers text queries beside CLIP's own without re-encoding a single image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class EncoderIdentity:
    """What must match between the encoder and a collection built with it."""

    model: str
    dim: int
    image_size: int

    def as_meta(self) -> dict[str, object]:
        """The form stored with a collection."""
        return {"model": self.model, "dim": self.dim, "image_size": self.image_size}


@runtime_checkable
class ImageTower(Protocol):
    """Anything that embeds photos into the collection's space (what ingest and image search use)."""

    @property
    def identity(self) -> EncoderIdentity:
        """The model, dimension and input size a collection built with this tower records."""
        ...

    def encode_images(
        self, images: list[Image.Image], batch_size: int = 8, background: bool = False
    ) -> np.ndarray:
        """Normalized float32 embeddings of RGB images, one row per image."""
        ...


@runtime_checkable
class TextTower(Protocol):
    """Anything that embeds text queries into the image space (text search, class prompts)."""

    @property
    def name(self) -> str:
        """Which tower this is ("clip", "multilingual"): answers and caches tell them apart."""
        ...

    @property
    def model_name(self) -> str:
        """The text model loaded (a hub name or a local folder)."""
        ...

    @property
    def dim(self) -> int:
        """Embedding size (the image space's)."""
        ...

    @property
    def max_tokens(self) -> int:
        """Longer texts are truncated to this many tokens, never refused."""
        ...

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Normalized float32 embeddings, one row per text."""
        ...

    def truncated(self, texts: list[str]) -> list[bool]:
        """For each text, whether `encode_texts` cuts it at `max_tokens` (tokenizer only, any thread)."""
        ...


def as_unit_float32(vectors: object) -> np.ndarray:
    """`vectors` as float32 rows of length one (what every tower returns)."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)
