"""CLIP, loaded through sentence-transformers with its exact rewrites, as an image and a text tower.

`load_clip(settings)` builds it from the settings. `ClipModel.image` and `ClipModel.text` are two
separate tower objects (`ImageTower`, `TextTower`) sharing the one loaded model and the process's model
thread, so another text tower trained into the same image space can stand beside `text` without
re-encoding a single image.
"""

from __future__ import annotations

import copy
import logging
import threading
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np

from core.model.device import resolve_device, resolve_precision
from core.model.hub_errors import explained_hub_errors
from core.model.memory import keep_freed_memory, own_remaining_tensors, release_freed_memory
from core.model.model_thread import Job, model_thread
from core.model.towers import EncoderIdentity, as_unit_float32

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from sentence_transformers import SentenceTransformer

    from core.settings import Settings

log = logging.getLogger(__name__)


def load_clip(settings: Settings) -> ClipModel:
    """The CLIP model the settings name, on their device, in their precision and thread count."""
    return ClipModel(
        settings.clip_model, settings.clip_device, settings.clip_precision, settings.torch_threads
    )


class ClipModel:
    """A CLIP model loaded through sentence-transformers, thread-safe: its two towers (`image`, `text`)
    return normalized float32; what they share (identity, logit scale, device...) is kept here."""

    def __init__(self, model: str, device: str = "auto", precision: str = "auto", threads: int = 0) -> None:
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model_name = model
        if self.device == "cpu":
            keep_freed_memory()
        log.info("loading %s on %s (%s)", model, self.device, self.precision)
        # All torch work, loading included, runs on the process's model thread (see ModelThread).
        with explained_hub_errors(model, "CLIP_MODEL"):
            self._model: SentenceTransformer = model_thread().call(lambda: self._load(threads))
        self.image = ClipImageTower(self)
        self.text = ClipTextTower(self)
        dim = self._model.get_embedding_dimension() or int(self.text.encode_texts(["a photo"]).shape[1])
        self.identity = EncoderIdentity(model=model, dim=int(dim), image_size=self._image_size())
        self.logit_scale = model_thread().call(self._logit_scale)

    def _load(self, threads: int) -> SentenceTransformer:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(self.model_name, device=self.device)
        self._model.eval()
        self._limit_text_length()
        self._speed_up_exactly()
        self._apply_precision()
        if self.device == "cpu":
            self._use_cpu_attention()
            self._pack_linears()
        return self._model

    def _limit_text_length(self) -> None:
        """Truncate texts to the text model's own position limit (77 for CLIP).

        sentence-transformers truncates to the tokenizer's `model_max_length`; a CLIP saved without one
        reads it as 10^30, and a long query then overflows the position embeddings (a ValueError)."""
        text_config = getattr(getattr(self._clip(), "config", None), "text_config", None)
        limit = getattr(text_config, "max_position_embeddings", None)
        if not isinstance(limit, int) or limit <= 0:
            return
        current = getattr(self._model, "max_seq_length", None)
        if current is None or current > limit:
            self._model.max_seq_length = limit
        tokenizer = getattr(self._model[0], "tokenizer", None)
        if tokenizer is not None and getattr(tokenizer, "model_max_length", limit) > limit:
            tokenizer.model_max_length = limit

    def _speed_up_exactly(self) -> None:
        """Rewrites that keep the model's function (rewrites.class_token_layer, rewrites.fused_activation):
        together about 5% of an image forward. Done on the weights as loaded, before any cast."""
        from core.model.rewrites import class_token_layer
        from core.model.rewrites.fused_activation import fold_quick_gelu

        fold_quick_gelu(self._model, self._half_dtype())
        class_token_layer.install(self._clip())

    def _use_cpu_attention(self) -> None:
        """The image tower's attention as two batched matrix products (rewrites.attention: ~5% faster)."""
        from core.model.rewrites.attention import register

        clip = self._clip()
        if hasattr(clip, "set_attn_implementation") and hasattr(
            getattr(clip, "config", None), "vision_config"
        ):
            clip.set_attn_implementation({"vision_config": register()})

    def _pack_linears(self) -> None:
        """Linear weights packed once for oneDNN (rewrites.packed_linear: 10-12% faster products)."""
        from core.model.rewrites.packed_linear import pack_linears

        # Only plain fp32/bf16 Linear layers pack: none under int8 (quantized) or fp16.
        if not pack_linears(self._model, after_each=release_freed_memory):
            return
        if self.precision == "fp32":
            # The packed copies replaced the fp32 weights safetensors had mapped from the file; the
            # rest would keep that whole mapping resident, a second copy of the weights.
            own_remaining_tensors(self._model)
        release_freed_memory()

    def _half_dtype(self) -> torch.dtype | None:
        """The 16-bit dtype the weights are cast to (bf16, fp16), or None (fp32 and int8 keep fp32)."""
        import torch as t

        return {"bf16": t.bfloat16, "fp16": t.float16}.get(self.precision)

    def _apply_precision(self) -> None:
        import torch as t

        half = self._half_dtype()
        if half is not None:
            self._model.to(half)
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

    def _forward(self, inputs: list[Any], batch_size: int) -> np.ndarray:
        with _inference_mode():
            vectors = self._model.encode(
                inputs,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return as_unit_float32(vectors)

    def warm_up(self) -> None:
        """Run one text and one image through the model so the first real query is not slower."""
        from PIL import Image

        self.text.encode_texts(["a photo of a landmark"])
        size = self.identity.image_size
        self.image.encode_images([Image.new("RGB", (size, size), (128, 128, 128))])

    def torch_module(self) -> torch.nn.Module:
        """The underlying torch module (for benchmarks and memory reports)."""
        return self._model


class ClipImageTower:
    """CLIP's image tower: RGB photos into the collection's space (an `ImageTower`)."""

    def __init__(self, model: ClipModel) -> None:
        self._model = model

    @property
    def identity(self) -> EncoderIdentity:
        """The model, dimension and input size a collection built with it records."""
        return self._model.identity

    @property
    def dim(self) -> int:
        """Embedding size."""
        return self._model.dim

    # Background passes on a CPU while queries are being asked: this many images at a time, so a text
    # query waits for ~1/4 of a 16-image batch at most (a ViT-L/14 batch of 16 is ~6.5 s on 2 cores).
    BACKGROUND_SLICE = 4
    # Queries asked within this many seconds make background passes short.
    INTERACTIVE_WINDOW_S = 60.0

    def encode_images(
        self, images: list[Image.Image], batch_size: int = 8, background: bool = False
    ) -> np.ndarray:
        """Embed RGB PIL images; rows are unit vectors. `background` work (indexing) yields to queries:
        it waits while they wait, and on a CPU is cut into short passes while queries are coming in."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._model
        thread = model_thread()
        step = len(images)
        if background and model.device == "cpu" and thread.interactive_within(self.INTERACTIVE_WINDOW_S):
            step = min(step, self.BACKGROUND_SLICE)
        parts = [
            thread.run(
                Job(
                    lambda xs: model._forward(xs, batch_size),
                    list(images[i : i + step]),
                    background=background,
                    tower="image",
                )
            )
            for i in range(0, len(images), step)
        ]
        vectors: np.ndarray = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return vectors


class ClipTextTower:
    """CLIP's own text tower: texts into the image space (a `TextTower`)."""

    name = "clip"

    def __init__(self, model: ClipModel) -> None:
        self._model = model
        # What sentence-transformers truncates texts to: 77 tokens for CLIP.
        self.max_tokens = int(getattr(model.torch_module(), "max_seq_length", None) or 77)
        # A copy of the tokenizer for `truncated`: a call sets the backend's truncation, so the one the
        # model thread uses must not be called from request threads at the same time.
        self._counter: Any = copy.deepcopy(model.torch_module().tokenizer)
        self._counter_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The CLIP model loaded."""
        return self._model.model_name

    @property
    def dim(self) -> int:
        """Embedding size."""
        return self._model.dim

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts (truncated to CLIP's 77 tokens, never an error); rows are unit vectors.

        Concurrent callers share forward passes: the texts of every caller waiting for the model are
        encoded together (ViT-L/14 on 2 CPU cores: one 16-token query takes 31 ms, eight take 91 ms, so
        a busy server answers about three times as many text searches)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._model
        job = Job(lambda xs: model._forward(xs, 32), list(texts), batch_key=(id(self), "texts"), tower="text")
        vectors: np.ndarray = model_thread().run(job)
        return vectors

    def truncated(self, texts: list[str]) -> list[bool]:
        """For each text, whether `encode_texts` cuts it (more than `max_tokens` tokens, the start and
        end tokens included). Tokenizer only: no torch, any thread."""
        if not texts:
            return []
        with self._counter_lock:
            ids = self._counter(list(texts), add_special_tokens=True, truncation=False, verbose=False)[
                "input_ids"
            ]
        return [len(row) > self.max_tokens for row in ids]


def _inference_mode() -> AbstractContextManager[Any]:
    import torch

    return torch.inference_mode()
