"""GPU ingest (only where CUDA is present): the product's ingest end to end against the image tower alone,
at the same precision (the encoder's auto: fp16 on CUDA) and the same device-sized batch.

- model only: the ingest's own device feed (ingest/device_feed.py) on pixels already decoded and cut to
  CLIP's input, one batch in flight: the ceiling ingest can reach on this GPU.
- ingest: `run_ingest` on the JPEG files (decoding in worker processes, thumbnails, labels, upserts into
  the embedded store), after the points of the previous round were deleted.

Target: ingest at least 0.9 of model only. Without CUDA the section says so and measures nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.util import median, ratio

log = logging.getLogger(__name__)
TARGET = 0.9


def run_if_cuda(
    model: str, photos: Callable[[], list[Path]], workdir: Path, rounds: int = 3
) -> dict[str, Any]:
    """The section's report; `{"measured": False, ...}` without CUDA (then no photo is generated)."""
    import torch

    if not torch.cuda.is_available():
        return {"measured": False, "why": "no CUDA on this machine: GPU ingest not measured"}
    return run(model, photos(), workdir, rounds)


def run(model: str, photos: list[Path], workdir: Path, rounds: int) -> dict[str, Any]:
    """Model-only and end-to-end rates over `rounds` (median), and their ratio."""
    from bench.ingest import bench_settings
    from core.images import decode_image
    from core.model import ClipModel
    from core.store import IMAGES, open_store
    from ingest.decode_workers import clip_pixels, plan_workers
    from ingest.pipeline import _device_feed, run_ingest

    encoder = ClipModel(model, device="cuda", precision="auto")
    encoder.warm_up()
    settings = bench_settings(model, workdir / "gpu", photos, batch_size=16)
    feed = _device_feed(settings, encoder)
    assert feed is not None
    size = feed.spec.size
    pixels = [clip_pixels(decode_image(p, settings.max_image_pixels, 2 * size).image, size) for p in photos]
    batches = [pixels[i : i + feed.max_batch] for i in range(0, len(pixels), feed.max_batch)]
    store = open_store(settings)
    rows = []
    try:
        run_ingest(settings, encoder, store, paths=photos[:2], recreate=True, show_progress=False)
        for batch in list(feed.encode_batches((None, b) for b in batches[:2])):  # warm the kernels
            del batch
        for _ in range(rounds):
            started = time.perf_counter()
            for _tag, _vectors in feed.encode_batches((None, b) for b in batches):
                pass
            model_only = len(pixels) / (time.perf_counter() - started)
            ids = [p.id for p in store.scroll(IMAGES)]
            store.delete(IMAGES, ids)
            report = run_ingest(settings, encoder, store, paths=photos, show_progress=False)
            if report.new != len(photos):
                raise RuntimeError(f"ingest encoded {report.new} of {len(photos)}: {report.skipped[:3]}")
            rows.append({"model_only_ips": model_only, "ingest_ips": report.images_per_s})
            log.info("gpu ingest round: %s", rows[-1])
    finally:
        store.close()
    result = {
        "measured": True,
        "device": encoder.device,
        "gpu": _gpu_name(),
        "precision": encoder.precision,
        "batch_size": feed.max_batch,
        "decode_workers": plan_workers(settings.decode_workers, encoder.device, os.cpu_count() or 1).workers,
        "photos": len(photos),
        "rounds": rounds,
        "model_only_ips": round(median([r["model_only_ips"] for r in rows]), 1),
        "ingest_ips": round(median([r["ingest_ips"] for r in rows]), 1),
        "ingest_vs_model_only": round(median([ratio(r["ingest_ips"], r["model_only_ips"]) for r in rows]), 3),
        "target": TARGET,
        "rounds_detail": [{k: round(float(np.round(v, 2)), 2) for k, v in r.items()} for r in rows],
    }
    result["met"] = result["ingest_vs_model_only"] >= TARGET
    return result


def _gpu_name() -> str:
    import torch

    return str(torch.cuda.get_device_name(0))
