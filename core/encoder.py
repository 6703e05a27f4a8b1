"""The CLIP encoder: images and texts into one normalized embedding space, via sentence-transformers.

The text side is its own object (`TextEncoder`) so a multilingual text tower trained into the same
image space can replace it without re-encoding a single image.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)


class TextEncoder(Protocol):
    """Anything that embeds text queries into the image space."""

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Normalized float32 embeddings, one row per text."""
        ...


@dataclass(frozen=True)
class EncoderIdentity:
    """What must match between the encoder and a collection built with it."""

    model: str
    dim: int
    image_size: int

    def as_meta(self) -> dict[str, object]:
        """The form stored with a collection."""
        return {"model": self.model, "dim": self.dim, "image_size": self.image_size}


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(requested: str) -> str:
    """Turn `auto` into cuda, mps or cpu, by what this machine has."""
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_precision(requested: str, device: str) -> str:
    """Turn `auto` into fp16 on CUDA, bf16 on a CPU with bf16 instructions, else fp32."""
    if requested != "auto":
        return requested
    if device == "cuda":
        return "fp16"
    if device == "cpu" and cpu_supports_bf16():
        return "bf16"
    return "fp32"


class ClipEncoder:
    """A CLIP model loaded through sentence-transformers, thread-safe, returning normalized float32."""

    def __init__(self, model: str, device: str = "auto", precision: str = "auto", threads: int = 0) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model_name = model
        log.info("loading %s on %s (%s)", model, self.device, self.precision)
        self._model: SentenceTransformer = SentenceTransformer(model, device=self.device)
        self._model.eval()
        self._apply_precision()
        # One forward at a time: concurrent passes would only fight over the same cores.
        self._lock = threading.Lock()
        dim = self._model.get_embedding_dimension() or int(self.encode_texts(["a photo"]).shape[1])
        self.identity = EncoderIdentity(model=model, dim=int(dim), image_size=self._image_size())
        self.logit_scale = self._logit_scale()

    def _apply_precision(self) -> None:
        import torch as t

        if self.precision == "bf16":
            self._model.to(t.bfloat16)
        elif self.precision == "fp16":
            self._model.to(t.float16)
        elif self.precision == "int8":
            # Weight-only-style dynamic int8 of the Linear layers (opt-in; see README for its cost).
            self._model = t.ao.quantization.quantize_dynamic(self._model, {t.nn.Linear}, dtype=t.qint8)

    def _clip(self) -> object:
        return self._model[0].model if hasattr(self._model[0], "model") else self._model[0].auto_model

    def _image_size(self) -> int:
        config = getattr(self._clip(), "config", None)
        vision = getattr(config, "vision_config", None)
        return int(getattr(vision, "image_size", 224))

    def _logit_scale(self) -> float:
        scale = getattr(self._clip(), "logit_scale", None)
        if scale is None:
            return 100.0
        return float(min(100.0, scale.detach().float().exp().item()))

    @property
    def dim(self) -> int:
        """Embedding size."""
        return self.identity.dim

    def encode_images(self, images: list[Image.Image], batch_size: int = 8) -> np.ndarray:
        """Embed RGB PIL images; rows are unit vectors."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock, _inference_mode():
            vectors = self._model.encode(
                images,  # type: ignore[arg-type]
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return _as_unit_float32(vectors)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts (truncated to CLIP's 77 tokens, never an error); rows are unit vectors."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock, _inference_mode():
            vectors = self._model.encode(
                texts,
                batch_size=32,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return _as_unit_float32(vectors)

    def warm_up(self) -> None:
        """Run one text and one image through the model so the first real query is not slower."""
        from PIL import Image

        self.encode_texts(["a photo of a landmark"])
        size = self.identity.image_size
        self.encode_images([Image.new("RGB", (size, size), (128, 128, 128))])

    def torch_module(self) -> torch.nn.Module:
        """The underlying torch module (for benchmarks and memory reports)."""
        return self._model


def _inference_mode() -> AbstractContextManager[Any]:
    import torch

    return torch.inference_mode()


def _as_unit_float32(vectors: object) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)
