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


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of handing it back to the kernel (Linux, CPU).

    Every activation of a forward pass is a large malloc; by default glibc returns such blocks to the
    kernel when they are freed (mmap threshold, heap trimming), so the next forward faults the same
    pages in again, zeroed: 380,000 page faults per ViT-L/14 batch of 8 here, 10-20% of its time.
    The process then simply stays at its peak working set (measured: about +100 MB). Returns whether
    it applied (False on other C libraries)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    mmap_ok = mallopt(m_mmap_threshold, 1 << 30) or mallopt(m_mmap_threshold, 32 << 20)
    return bool(mmap_ok and mallopt(m_trim_threshold, 1 << 30))


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
        if self.device == "cpu":
            keep_freed_memory()
        log.info("loading %s on %s (%s)", model, self.device, self.precision)
        self._model: SentenceTransformer = SentenceTransformer(model, device=self.device)
        self._model.eval()
        self._apply_precision()
        if self.device == "cpu":
            self._use_cpu_attention()
        # One forward at a time: concurrent passes would only fight over the same cores.
        self._lock = threading.Lock()
        self._pending_texts: list[_TextRequest] = []
        self._text_turn = threading.Condition()  # guards _pending_texts and _text_leader
        self._text_leader = False
        self._last_text_batch = 0
        dim = self._model.get_embedding_dimension() or int(self.encode_texts(["a photo"]).shape[1])
        self.identity = EncoderIdentity(model=model, dim=int(dim), image_size=self._image_size())
        self.logit_scale = self._logit_scale()

    def _use_cpu_attention(self) -> None:
        """The image tower's attention as two batched matrix products (core.attention: ~5% faster)."""
        from core.attention import register

        clip = self._clip()
        if hasattr(clip, "set_attn_implementation") and hasattr(
            getattr(clip, "config", None), "vision_config"
        ):
            clip.set_attn_implementation({"vision_config": register()})

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
        """Embed texts (truncated to CLIP's 77 tokens, never an error); rows are unit vectors.

        Concurrent callers share forward passes: the texts of every caller waiting for the model are
        encoded together by whichever of them gets it next, and when the last pass was shared its
        successor waits up to 3 ms for the callers it answered to come back (on 2 CPU cores one
        query takes 50 ms and eight take 200 ms: a busy server answers two to three times as many
        text searches). A lone caller never waits."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        request, batch = _TextRequest(list(texts)), []
        with self._text_turn:
            self._pending_texts.append(request)
            if self._text_leader:
                self._text_turn.notify_all()  # a leader may be gathering
            while self._text_leader and not request.done:
                self._text_turn.wait()
            lead = not request.done  # no pass is gathering: this caller runs one for everyone waiting
            self._text_leader = self._text_leader or lead
        if lead:
            try:
                with self._text_turn:
                    if self._last_text_batch > 1:  # busy: give the callers just answered a moment to return
                        self._text_turn.wait_for(
                            lambda: len(self._pending_texts) >= self._last_text_batch, 0.003
                        )
                    batch, self._pending_texts = self._pending_texts, []
                    self._last_text_batch = len(batch)
                with self._lock:
                    self._encode_text_batch(batch)
            finally:
                with self._text_turn:
                    for r in batch:
                        if not r.done:  # interrupted (KeyboardInterrupt, ...)
                            r.error = RuntimeError("text encoding was interrupted")
                    self._text_leader = False
                    self._text_turn.notify_all()
        if request.error is not None:
            raise request.error
        assert request.vectors is not None
        return request.vectors

    def _encode_text_batch(self, batch: list[_TextRequest]) -> None:
        """Encode the requests together (each alone if that fails); called holding the model lock."""
        try:
            vectors = self._encode_texts_now([text for r in batch for text in r.texts])
            start = 0
            for r in batch:
                r.vectors, start = vectors[start : start + len(r.texts)], start + len(r.texts)
        except Exception as err:
            if len(batch) == 1:
                batch[0].error = err
            else:
                for r in batch:
                    self._encode_text_batch([r])

    def _encode_texts_now(self, texts: list[str]) -> np.ndarray:
        with _inference_mode():
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


@dataclass
class _TextRequest:
    """One caller's texts waiting for a shared forward pass, and then its answer."""

    texts: list[str]
    vectors: np.ndarray | None = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.vectors is not None or self.error is not None


def _inference_mode() -> AbstractContextManager[Any]:
    import torch

    return torch.inference_mode()


def _as_unit_float32(vectors: object) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)
