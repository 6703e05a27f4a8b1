"""Decoding for the ingest job: read, check the hash, decode, thumbnail, in worker processes (or threads).

Decoding and resizing run Python between Pillow's C calls, so threads stop scaling past a few cores; on a
machine whose model is fast (a GPU) the model would wait on them. Worker processes decode instead, at most
`prefetch` files ahead of the model (bounded memory), and hand results back in the order of the input.
The workers import only Pillow and numpy (a forkserver starts them, not a copy of the process holding
the model), and leave when the ingest process dies, even by SIGKILL.

With `clip_size` set (the GPU path, ingest/device_feed.py), a worker also does CLIP's resize and centre
crop, so the model side receives ready uint8 pixels.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from core.ids import sha256_hex
from core.images import DecodedImage, UnsupportedImage, decode_image, thumbnail_jpeg
from core.phash import fingerprint
from ingest.files import UnreadableFile, max_file_bytes, read_regular_file

log = logging.getLogger(__name__)
T = TypeVar("T")

# Processes pay for themselves only when there are cores to spare beside the model: on up to this many
# cores with the model on the CPU, threads (as before) are as fast and start instantly.
THREADS_UP_TO_CORES = 4
MAX_WORKERS = 32


@dataclass(frozen=True)
class DecodeOptions:
    """What every decode of a run shares."""

    max_pixels: int
    min_side: int
    thumb_size: int
    clip_size: int | None = None


@dataclass
class DecodeResult:
    """A decoded photo (image, thumbnail, perceptual hash, and CLIP's pixels when asked), or the reason
    it was skipped."""

    image: DecodedImage | None
    thumb: bytes | None
    error: str | None
    pixels: np.ndarray | None = None
    phash: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkerPlan:
    """How many decoders, and whether they are processes."""

    workers: int
    processes: bool


def plan_workers(setting: int, device: str, cores: int) -> WorkerPlan:
    """`DECODE_WORKERS` (0 = auto) turned into a plan for this machine and model device.

    Auto: with the model on a GPU, one process per core but one (the model's feeder) - the GPU
    outruns any decoder; with the model on the CPU it shares the cores, so threads up to 4 cores as
    before, and half the cores as processes beyond."""
    cores = max(1, cores)
    if setting > 0:
        return WorkerPlan(min(setting, MAX_WORKERS), processes=True)
    if device.startswith("cuda"):
        return WorkerPlan(max(1, min(cores - 1, MAX_WORKERS)), processes=True)
    if cores <= THREADS_UP_TO_CORES:
        return WorkerPlan(max(1, min(4, cores)), processes=False)
    return WorkerPlan(min(cores // 2, MAX_WORKERS), processes=True)


def decode_file(path: Path, sha256: str, options: DecodeOptions) -> DecodeResult:
    """Read the file again, refuse it if its bytes changed since they were hashed, decode, thumbnail,
    perceptual hash (near-duplicates, core/phash.py)."""
    try:
        data = read_regular_file(path, max_file_bytes(options.max_pixels))
        if sha256_hex(data) != sha256:
            # The id comes from the bytes hashed earlier: never store another content under it.
            return DecodeResult(None, None, "changed while being ingested; run ingest again")
        decoded = decode_image(data, options.max_pixels, min_side=options.min_side)
        thumb = thumbnail_jpeg(decoded.image, options.thumb_size)
        pixels = clip_pixels(decoded.image, options.clip_size) if options.clip_size else None
        phash = tuple(fingerprint(decoded.image).to_stored())
        return DecodeResult(decoded, thumb, None, pixels, phash)
    except UnsupportedImage as err:
        return DecodeResult(None, None, err.reason)
    except UnreadableFile as err:
        return DecodeResult(None, None, err.reason)
    except Exception as err:  # a bad file must never stop the run
        log.exception("unexpected failure decoding %s", path)
        return DecodeResult(None, None, f"cannot decode ({type(err).__name__})")


def clip_pixels(image: Image.Image, size: int) -> np.ndarray:
    """CLIP's input as uint8 (size, size, 3): shorter side resized to `size` (bicubic), centre crop.

    The same steps as CLIP's image processor, minus the scaling to [0, 1] and the normalisation, which
    the device does on the whole batch."""
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize(
        (max(size, int(width * scale)), max(size, int(height * scale))), Image.Resampling.BICUBIC
    )
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)).convert("RGB"), dtype=np.uint8)


def decoded_in_order(
    items: Iterable[T],
    where: Callable[[T], tuple[Path, str]],
    options: DecodeOptions,
    plan: WorkerPlan,
    prefetch: int,
) -> Iterator[tuple[T, DecodeResult]]:
    """(item, its decode) for every item, in order, decoding at most `prefetch` items ahead.

    `where(item)` gives the file and the SHA-256 it was hashed to."""
    with _executor(plan) as pool:
        pending: deque[tuple[T, Future[DecodeResult]]] = deque()
        queue = iter(items)

        def submit_next() -> None:
            item = next(queue, None)
            if item is not None:
                path, sha256 = where(item)
                pending.append((item, pool.submit(decode_file, path, sha256, options)))

        for _ in range(max(1, prefetch)):
            submit_next()
        while pending:
            item, future = pending.popleft()
            result = future.result()
            submit_next()
            yield item, result


def _executor(plan: WorkerPlan) -> Executor:
    if not plan.processes:
        return ThreadPoolExecutor(max_workers=plan.workers, thread_name_prefix="decode")
    context = multiprocessing.get_context("forkserver")
    # The forkserver imports this module once; workers fork from it, without torch or the model.
    context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(
        max_workers=plan.workers, mp_context=context, initializer=_leave_with, initargs=(os.getpid(),)
    )


def _leave_with(job: int) -> None:
    """In a worker: exit as soon as the ingest process `job` is gone (a SIGKILL included).

    Not the worker's parent: that is the forkserver, which itself stays up while any worker holds
    its liveness pipe, so neither would ever notice the job's death."""

    def watch() -> None:
        while not _gone(job):
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=watch, name="job-watch", daemon=True).start()


def _gone(pid: int) -> bool:
    """True when the process has exited (a zombie not yet reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] in ("Z", "X")
