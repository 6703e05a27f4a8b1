"""Feeding the image tower on a GPU: batches sized for the device, uint8 pixels through pinned memory,
non-blocking copies on a side stream, normalisation on the device in the model's precision (fp16), and
one batch in flight while the CPU writes the one before.

On a CPU none of this applies (no pinned memory, no streams): the pipeline keeps the encoder's own path
there, and `DeviceFeed` on a CPU device only exists so the same code can be tested anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

# Activation memory of one ViT-L/14 image in an fp16 inference pass, generously rounded up (257 tokens x
# 1024 wide, 4x in the MLP, 16 heads of 257 x 257 attention, a few live copies): batches use half the
# free memory at most.
BYTES_PER_IMAGE = 24 << 20
MAX_DEVICE_BATCH = 256
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def device_batch_size(device: str, configured: int, free_bytes: int | None) -> int:
    """Images per forward pass: `ENCODE_BATCH_SIZE` on a CPU; on CUDA as many as half the free memory
    holds (a multiple of 8, at most 256), never fewer than configured."""
    if not device.startswith("cuda") or free_bytes is None:
        return configured
    fits = int(free_bytes // 2 // BYTES_PER_IMAGE) // 8 * 8
    return max(configured, min(MAX_DEVICE_BATCH, fits))


def free_device_bytes(device: str) -> int | None:
    """Free memory of a CUDA device, or None elsewhere."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


@dataclass(frozen=True)
class PixelSpec:
    """What CLIP's image processor does after decoding: the crop size and the normalisation."""

    size: int
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD


@dataclass
class Pending:
    """A batch on its way through the device; `result()` waits for its vectors."""

    _output: torch.Tensor
    _done: Any  # a torch.cuda.Event, or None on a CPU
    _rows: int

    def result(self) -> np.ndarray:
        """The batch's unit float32 vectors (waits for the device)."""
        if self._done is not None:
            self._done.synchronize()
        return self._output[: self._rows].numpy().copy()


class DeviceFeed:
    """uint8 (N, size, size, 3) pixels in, unit float32 vectors out, through `image_features`."""

    def __init__(
        self,
        image_features: Callable[[torch.Tensor], torch.Tensor],
        device: str,
        dtype: torch.dtype,
        spec: PixelSpec,
        max_batch: int,
        run: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> None:
        import torch

        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.dtype = dtype
        self.spec = spec
        self.max_batch = max_batch
        self._features = image_features
        # Torch work runs where the caller says (the process's model thread), or here.
        self._run = run or (lambda work: work())
        shape = (max_batch, spec.size, spec.size, 3)
        # Two pinned input buffers: one being copied or computed, one being filled. Pinned memory only
        # on CUDA, where it makes the copies asynchronous; elsewhere it is plain memory.
        self._inputs = [torch.empty(shape, dtype=torch.uint8, pin_memory=self.cuda) for _ in range(2)]
        self._input_free: list[Any] = [None, None]
        self._turn = 0
        self._copy_stream = torch.cuda.Stream(self.device) if self.cuda else None
        self._mean = torch.tensor(spec.mean, device=self.device, dtype=dtype).view(1, 3, 1, 1)
        self._std = torch.tensor(spec.std, device=self.device, dtype=dtype).view(1, 3, 1, 1)

    @property
    def pinned(self) -> bool:
        """True when the input buffers are page-locked (CUDA only)."""
        return bool(self._inputs[0].is_pinned())

    def submit(self, pixels: Sequence[np.ndarray] | np.ndarray) -> Pending:
        """Start a batch: copy it into a pinned buffer, send it to the device without waiting, and queue
        normalisation, the image tower and the copy back. Returns at once on CUDA."""
        rows = len(pixels)
        if not 0 < rows <= self.max_batch:
            raise ValueError(f"a batch holds 1 to {self.max_batch} images, not {rows}")
        pending: Pending = self._run(lambda: self._submit(pixels, rows))
        return pending

    def _submit(self, pixels: Sequence[np.ndarray] | np.ndarray, rows: int) -> Pending:
        import torch

        turn, self._turn = self._turn, 1 - self._turn
        if self._input_free[turn] is not None:
            self._input_free[turn].synchronize()  # its previous copy to the device is done
        host = self._inputs[turn][:rows]
        host.numpy()[:] = np.stack(pixels) if not isinstance(pixels, np.ndarray) else pixels
        if self._copy_stream is not None:
            with torch.cuda.stream(self._copy_stream):
                on_device = host.to(self.device, non_blocking=True)
                copied = torch.cuda.Event()
                copied.record(self._copy_stream)
            torch.cuda.current_stream(self.device).wait_event(copied)
            on_device.record_stream(torch.cuda.current_stream(self.device))
            self._input_free[turn] = copied
        else:
            on_device = host.to(self.device)
        with torch.inference_mode():
            x = on_device.permute(0, 3, 1, 2).to(self.dtype).div_(255).sub_(self._mean).div_(self._std)
            vectors = torch.nn.functional.normalize(self._features(x).float(), dim=-1)
            if self.cuda:
                output = torch.empty(vectors.shape, dtype=torch.float32, pin_memory=True)
                output.copy_(vectors, non_blocking=True)
                done = torch.cuda.Event()
                done.record(torch.cuda.current_stream(self.device))
                return Pending(output, done, rows)
            return Pending(vectors, None, rows)

    def encode_batches(
        self, batches: Iterable[tuple[T, Sequence[np.ndarray]]]
    ) -> Iterator[tuple[T, np.ndarray]]:
        """(tag, vectors) per (tag, pixels) batch, in order, with the next batch submitted before the
        previous one's vectors are waited for: the device computes while the caller writes."""
        previous: tuple[T, Pending] | None = None
        for tag, pixels in batches:
            pending = self.submit(pixels)
            if previous is not None:
                yield previous[0], previous[1].result()
            previous = (tag, pending)
        if previous is not None:
            yield previous[0], previous[1].result()


def feed_for_clip(clip: Any, processor: Any, device: str, max_batch: int, run: Any = None) -> DeviceFeed:
    """A DeviceFeed on a transformers CLIPModel (`get_image_features`) with its image processor's
    crop size and normalisation, in the model's own precision (fp16 on CUDA)."""
    image_processor = getattr(processor, "image_processor", processor)
    crop = getattr(image_processor, "crop_size", None)
    size = int(_field(crop, "height") or getattr(clip.config.vision_config, "image_size", 224))
    spec = PixelSpec(
        size=size,
        mean=tuple(getattr(image_processor, "image_mean", CLIP_MEAN)),  # type: ignore[arg-type]
        std=tuple(getattr(image_processor, "image_std", CLIP_STD)),  # type: ignore[arg-type]
    )
    dtype = next(clip.parameters()).dtype

    def features(pixel_values: torch.Tensor) -> torch.Tensor:
        out = clip.get_image_features(pixel_values=pixel_values)
        return getattr(out, "pooler_output", out)

    return DeviceFeed(features, device, dtype, spec, max_batch, run=run)


def _field(container: Any, name: str) -> Any:
    if container is None:
        return None
    if isinstance(container, dict):
        return container.get(name)
    return getattr(container, name, None)
