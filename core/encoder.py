"""The CLIP encoder: images and texts into one normalized embedding space, via sentence-transformers.

The text side is its own object (`TextEncoder`) so a multilingual text tower trained into the same
image space can replace it without re-encoding a single image.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
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
    The process then simply stays at its peak working set (measured: about +100 MB).

    It also gives every thread the one main malloc arena: a thread's own arena is made of 64 MB heaps,
    so a larger block (an fp32 activation of 16 images is 67 MB) is mmapped and faulted in afresh on
    each use: the int8 model ran 30% slower on the model thread than on the main thread. Call this
    before the process starts threads (the entry points do); threads started earlier keep their arena.
    Returns whether it applied (False on other C libraries)."""
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    mmap_ok = mallopt(m_mmap_threshold, 1 << 30) or mallopt(m_mmap_threshold, 32 << 20)
    return bool(mmap_ok and mallopt(m_trim_threshold, 1 << 30) and mallopt(m_arena_max, 1))


def release_freed_memory() -> bool:
    """Hand the freed memory in the middle of glibc's heap back to the kernel, once (`malloc_trim`).

    For after a one-off churn that `keep_freed_memory` would otherwise keep for good: packing the
    weights (rewrites.packed_linear) frees every plain weight, 815 MB for ViT-L/14 in bf16, in holes the
    activations cannot reuse. Returns whether it applied (False on other C libraries)."""
    malloc_trim = _glibc_function("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True


def _glibc_function(name: str) -> Any:
    """glibc's function `name` through ctypes, or None off Linux or on another C library (musl...)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def own_remaining_tensors(module: torch.nn.Module) -> None:
    """Give every plain (not packed) parameter and buffer of `module` its own memory, so nothing
    points into the file safetensors mapped the weights from any more and the mapping can go."""
    import torch

    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if not tensor.is_mkldnn:
                tensor.data = tensor.data.clone()


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
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model_name = model
        if self.device == "cpu":
            keep_freed_memory()
        log.info("loading %s on %s (%s)", model, self.device, self.precision)
        # All torch work, loading included, runs on the process's model thread (see _ModelThread).
        self._model: SentenceTransformer = model_thread().call(lambda: self._load(threads))
        dim = self._model.get_embedding_dimension() or int(self.encode_texts(["a photo"]).shape[1])
        self.identity = EncoderIdentity(model=model, dim=int(dim), image_size=self._image_size())
        self.logit_scale = model_thread().call(self._logit_scale)

    def _load(self, threads: int) -> SentenceTransformer:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(self.model_name, device=self.device)
        self._model.eval()
        self._speed_up_exactly()
        self._apply_precision()
        if self.device == "cpu":
            self._use_cpu_attention()
            self._pack_linears()
        return self._model

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

    def encode_images(self, images: list[Image.Image], batch_size: int = 8) -> np.ndarray:
        """Embed RGB PIL images; rows are unit vectors."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors: np.ndarray = model_thread().run(_Job(lambda xs: self._forward(xs, batch_size), list(images)))
        return vectors

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts (truncated to CLIP's 77 tokens, never an error); rows are unit vectors.

        Concurrent callers share forward passes: the texts of every caller waiting for the model are
        encoded together (ViT-L/14 on 2 CPU cores: one 16-token query takes 31 ms, eight take 91 ms, so
        a busy server answers about three times as many text searches)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        job = _Job(lambda xs: self._forward(xs, 32), list(texts), batch_key=(id(self), "texts"))
        vectors: np.ndarray = model_thread().run(job)
        return vectors

    def _forward(self, inputs: list[Any], batch_size: int) -> np.ndarray:
        with _inference_mode():
            vectors = self._model.encode(
                inputs,
                batch_size=batch_size,
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


@dataclass(eq=False)
class _Job:
    """Work for the model thread: `work(inputs)`, its answer or error. Jobs with the same `batch_key`
    waiting together are done in one call on all their inputs, whose rows are then split back."""

    work: Callable[[list[Any]], Any]
    inputs: list[Any]
    batch_key: object = None
    caller: int = field(default_factory=threading.get_ident)
    result: Any = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class _Passes:
    """What the model thread remembers of the recent passes under one batch key."""

    callers: deque[set[int]] = field(default_factory=lambda: deque(maxlen=2))  # of the last two
    last_s: float = 0.0  # how long the last one took
    ended_at: float = 0.0


class _ModelThread:
    """The one thread of a process that runs torch: every model load and forward pass, in turn.

    Why one thread: torch's CPU kernels use OpenMP, and GNU OpenMP keeps a team of worker threads for
    each thread that starts parallel work. Once a process has more such threads than cores (gunicorn's
    request threads each calling the model, or a model loaded on one thread and used on another),
    OpenMP stops spinning between parallel regions and puts its workers to sleep after each one; a
    forward pass is hundreds of short regions, and each then starts by waking a thread. Measured on 2
    cores (ViT-L/14 text tower, one 16-token query): 29 ms while one thread had used torch, 41-48 ms
    once four had, from any of them. Concurrent passes would only fight over the same cores anyway.

    Texts waiting together are encoded in one pass (`batch_key`). When the passes are shared (a busy
    server: the next pass starts straight after the last), it waits a moment for every caller of the
    last two passes to be back, up to a quarter of a pass: otherwise callers settle into alternating
    halves (4 gunicorn threads: passes of 2 texts at 40 ms instead of 4 at 56 ms). A lone caller
    never waits."""

    GATHER_SHARE = 0.25  # of the last pass's duration
    GATHER_MAX_S = 0.02

    def __init__(self) -> None:
        self._jobs: deque[_Job] = deque()
        self._turn = threading.Condition()
        self._owner_pid = -1  # the process whose thread runs (a forked child starts its own)
        self._thread_id: int | None = None
        self._passes: dict[object, _Passes] = {}  # per batch key

    def call(self, work: Callable[[], Any]) -> Any:
        """Run `work()` on the model thread and return what it returns."""
        return self.run(_Job(lambda _: work(), []))

    def run(self, job: _Job) -> Any:
        """Queue a job and wait for its answer (its error is raised here)."""
        if threading.get_ident() == self._thread_id:  # called from a job: do it now
            self._do([job])
            job.done = True
        with self._turn:
            if self._owner_pid != os.getpid():
                self._owner_pid = os.getpid()
                self._jobs.clear()
                thread = threading.Thread(target=self._loop, name="torch-model", daemon=True)
                thread.start()
                self._thread_id = thread.ident
            if not job.done:
                self._jobs.append(job)
            self._turn.notify_all()
            while not job.done:
                self._turn.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _next_batch(self) -> list[_Job]:
        """The next job, with every job waiting under its batch key; called holding the condition."""
        while not self._jobs:
            self._turn.wait()
        key = self._jobs[0].batch_key
        if key is None:
            return [self._jobs.popleft()]
        passes = self._passes.setdefault(key, _Passes())
        busy = time.perf_counter() - passes.ended_at < passes.last_s  # straight after a pass
        if busy and any(len(callers) > 1 for callers in passes.callers):
            expected = len(set().union(*passes.callers))
            self._turn.wait_for(
                lambda: sum(j.batch_key == key for j in self._jobs) >= expected,
                min(self.GATHER_MAX_S, self.GATHER_SHARE * passes.last_s),
            )
        batch = [j for j in self._jobs if j.batch_key == key]
        self._jobs = deque(j for j in self._jobs if j.batch_key != key)
        passes.callers.append({j.caller for j in batch})
        return batch

    def _loop(self) -> None:
        while True:
            with self._turn:
                batch = self._next_batch()
            passes = self._passes.setdefault(batch[0].batch_key, _Passes())
            started = time.perf_counter()
            self._do(batch)
            passes.ended_at = time.perf_counter()
            passes.last_s = passes.ended_at - started
            with self._turn:
                for job in batch:
                    job.done = True
                self._turn.notify_all()

    def _do(self, batch: list[_Job]) -> None:
        """Do the jobs together (each alone if that fails), recording answers or errors."""
        try:
            if batch[0].batch_key is None:
                batch[0].result = batch[0].work(batch[0].inputs)
                return
            rows = batch[0].work([x for job in batch for x in job.inputs])
            start = 0
            for job in batch:
                job.result, start = rows[start : start + len(job.inputs)], start + len(job.inputs)
        except Exception as err:
            if len(batch) == 1:
                batch[0].error = err
            else:
                for job in batch:
                    self._do([job])
        except BaseException as err:  # never leave a caller waiting, never let the thread die
            for job in batch:
                if job.result is None:
                    job.error = err


_MODEL_THREAD = _ModelThread()


def model_thread() -> _ModelThread:
    """The process's model thread (started on first use)."""
    return _MODEL_THREAD


def _inference_mode() -> AbstractContextManager[Any]:
    import torch

    return torch.inference_mode()


def _as_unit_float32(vectors: object) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)
