"""Ingest and precision: the product's ingest against the bare model, the prototype's way, fp32 and int8.

Every measurement runs in rounds, and each round runs every variant once, back to back, so a ratio is
taken between numbers measured under the same conditions (other people's processes on a shared machine
come and go); the report gives the median over rounds of each rate and of each per-round ratio.

- model only: `ClipModel.image.encode_images` on images already decoded and cut to the model's input size
  (224 x 224), at the product's batch size: the ceiling ingest can reach at that precision.
- ingest: `ingest.pipeline.run_ingest` end to end on the JPEG files (read, hash, decode in threads while
  the model encodes, label, thumbnail, upsert), into the embedded store, after the points of the previous
  round were deleted; the class prompts are encoded once before the rounds (a one-time cost per classes
  file, reported apart).
- prototype: the original app's way, in its own process (bench/prototype.py): plain sentence-transformers
  in fp32, one image at a time, full-size decode with PIL (no draft mode), CLIP preprocessing on the full
  image, vectors added to a FAISS flat index.
- fp32 and int8 (`CLIP_PRECISION=int8`, torch dynamic quantization): model-only speed, and fidelity
  against fp32 on the same images (cosine; top-12 overlap of text->image and image->image search results).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.prototype import PrototypeWorker
from bench.util import CpuWindow, median, memory_status, ratio, wait_for_quiet

log = logging.getLogger(__name__)


@dataclass
class IngestConfig:
    """Sample counts of one ingest/precision run."""

    photos: int  # ingest and model-only images per round (the fidelity set too)
    photo_size: tuple[int, int]
    rounds: int
    prototype_per_round: int
    fp32_per_round: int  # fp32 and int8 images per round (slices of the photos, so all get covered)
    batch_size: int
    int8: bool = True


def load_encoder(settings: Any, precision: str, memory: dict[str, float] | None = None) -> tuple[Any, float]:
    """The product's model as `settings` load it (device auto), in `precision`, and its load time; with
    `memory`, also the most anonymous memory (RssAnon, MiB) the process gained while loading, sampled
    every 10 ms, and kept after."""
    from core.model import load_clip

    base = memory_status(os.getpid()).get("RssAnon", 0.0)
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], memory_status(os.getpid()).get("RssAnon", 0.0))

    sampler = threading.Thread(target=sample, daemon=True)
    if memory is not None:
        sampler.start()
    started = time.perf_counter()
    try:
        encoder = load_clip(settings.model_copy(update={"clip_precision": precision}))
        encoder.warm_up()
    finally:
        stop.set()
    seconds = time.perf_counter() - started
    if memory is not None:
        sampler.join()
        memory["anon_peak_gain_mib"] = round(peak[0] - base, 1)
        memory["anon_kept_mib"] = round(memory_status(os.getpid()).get("RssAnon", 0.0) - base, 1)
    return encoder, seconds


def model_input(path: Path, image_size: int, max_pixels: int) -> Image.Image:
    """A photo decoded the product's way and cut to the model's input: shorter side, then centre crop."""
    from core.images import decode_image

    image = decode_image(path, max_pixels, min_side=2 * image_size).image
    width, height = image.size
    scale = image_size / min(width, height)
    image = image.resize(
        (max(image_size, round(width * scale)), max(image_size, round(height * scale))),
        Image.Resampling.BICUBIC,
    )
    left, top = (image.width - image_size) // 2, (image.height - image_size) // 2
    return image.crop((left, top, left + image_size, top + image_size))


def _delete_all_images(store: Any) -> None:
    from core.store import IMAGES

    ids = [p.id for p in store.scroll(IMAGES)]
    for start in range(0, len(ids), 512):
        store.delete(IMAGES, ids[start : start + 512])


def fidelity(
    reference: np.ndarray, other: np.ndarray, text_ref: np.ndarray, text_other: np.ndarray, k: int = 12
) -> dict[str, Any]:
    """How close `other` embeddings are to the fp32 `reference`: cosine, and top-k overlap of searches.

    Text queries search the image set; each image also searches the others (leave-one-out)."""
    cos = np.sum(reference * other, axis=1)
    k_text = min(k, len(reference))
    k_image = min(k, len(reference) - 1)

    def topk(queries: np.ndarray, base: np.ndarray, kk: int, exclude_self: bool) -> list[set[int]]:
        scores = queries @ base.T
        if exclude_self:
            np.fill_diagonal(scores, -np.inf)
        return [set(np.argsort(-row, kind="stable")[:kk].tolist()) for row in scores]

    def overlap(a: list[set[int]], b: list[set[int]], kk: int) -> float:
        return float(np.mean([len(x & y) / kk for x, y in zip(a, b, strict=True)])) if kk > 0 else 1.0

    text_overlap = overlap(
        topk(text_ref, reference, k_text, False), topk(text_other, other, k_text, False), k_text
    )
    image_overlap = overlap(
        topk(reference, reference, k_image, True), topk(other, other, k_image, True), k_image
    )
    text_cos = np.sum(text_ref * text_other, axis=1)
    pairwise = reference @ reference.T
    off_diagonal = pairwise[~np.eye(len(reference), dtype=bool)]
    return {
        "images": len(reference),
        "text_queries": len(text_ref),
        "cosine_image_min": round(float(cos.min()), 6),
        "cosine_image_mean": round(float(cos.mean()), 6),
        "cosine_text_min": round(float(text_cos.min()), 6),
        "top12_overlap_text_to_image": round(text_overlap, 4),
        "top12_overlap_image_to_image": round(image_overlap, 4),
        "k_text": k_text,
        "k_image": k_image,
        # Context: random weights put all generated photos close together, which makes rankings fragile.
        "fp32_mean_pairwise_cosine": round(float(off_diagonal.mean()), 4) if off_diagonal.size else None,
    }


def bench_settings(model: str, workdir: Path, photos: list[Path], batch_size: int) -> Any:
    """The product's settings for the bench: the bench model, the embedded store under `workdir`."""
    from core.settings import Settings

    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        clip_model=model,
        clip_device="auto",
        clip_precision="auto",
        images_dir=photos[0].parent,
        data_dir=workdir / "data",
        encode_batch_size=batch_size,
        qdrant_url=None,
    )


def prepare_only(model: str, config: IngestConfig, workdir: Path, photos: list[Path]) -> tuple[Any, Any]:
    """Without the ingest section: the default encoder and a small ingested collection for the queries."""
    from core.store import open_store
    from ingest.pipeline import run_ingest

    settings = bench_settings(model, workdir, photos, config.batch_size)
    encoder, _ = load_encoder(settings, "auto")
    store = open_store(settings)
    try:
        run_ingest(settings, encoder, store, paths=photos, recreate=True, show_progress=False)
    finally:
        store.close()
    return encoder, settings


def run(model: str, config: IngestConfig, workdir: Path, photos: list[Path]) -> dict[str, Any]:
    """The ingest and precision section; returns its report and leaves the default encoder and store
    data under `workdir` for the query section (in `result["_encoder"]`, removed before writing)."""
    from core.classes import load_classes
    from core.store import open_store
    from ingest.pipeline import run_ingest

    settings = bench_settings(model, workdir, photos, config.batch_size)
    load_memory: dict[str, float] = {}
    default, default_load_s = load_encoder(settings, "auto", load_memory)
    size = default.identity.image_size
    log.info("default encoder: %s on %s, loaded in %.1f s", default.precision, default.device, default_load_s)
    inputs = [model_input(p, size, settings.max_image_pixels) for p in photos]
    prompts = [p for c in load_classes(settings.classes_file) for p in c.prompts]

    store = open_store(settings)
    started = time.perf_counter()
    first = run_ingest(settings, default, store, paths=photos[:1], recreate=True, show_progress=False)
    first_run_s = time.perf_counter() - started

    fp32 = default if default.precision == "fp32" else load_encoder(settings, "fp32")[0]
    int8 = load_encoder(settings, "int8")[0] if config.int8 else None
    prototype = PrototypeWorker(model)

    rows: list[dict[str, float]] = []
    default_vectors: np.ndarray | None = None
    fp32_vectors: dict[int, np.ndarray] = {}
    int8_vectors: dict[int, np.ndarray] = {}
    try:
        proto_pool = photos[
            ::-1
        ]  # the prototype gets other files first, so no page cache favours either side
        for rnd in range(config.rounds):
            row: dict[str, float] = {}
            waited = 0.0
            with CpuWindow((_pid(), prototype.pid)) as window:
                waited += wait_for_quiet((prototype.pid,))
                t = time.perf_counter()
                vectors = default.image.encode_images(inputs, batch_size=config.batch_size)
                row["model_only_ips"] = len(inputs) / (time.perf_counter() - t)
                if default_vectors is None:
                    default_vectors = vectors

                _delete_all_images(store)
                waited += wait_for_quiet((prototype.pid,))
                report = run_ingest(settings, default, store, paths=photos, show_progress=False)
                if report.new != len(photos):
                    raise RuntimeError(
                        f"ingest encoded {report.new} of {len(photos)} photos: {report.skipped}"
                    )
                row["ingest_ips"] = report.images_per_s
                row["ingest_encode_share"] = report.encode_seconds / report.seconds

                chosen = [
                    proto_pool[(rnd * config.prototype_per_round + i) % len(proto_pool)]
                    for i in range(config.prototype_per_round)
                ]
                waited += wait_for_quiet((prototype.pid,))
                seconds = prototype.encode([str(p) for p in chosen])
                row["prototype_ips"] = len(chosen) / seconds

                lo = (rnd * config.fp32_per_round) % len(inputs)
                idx = [(lo + i) % len(inputs) for i in range(config.fp32_per_round)]
                batch = [inputs[i] for i in idx]
                waited += wait_for_quiet((prototype.pid,))
                t = time.perf_counter()
                got = fp32.image.encode_images(batch, batch_size=config.batch_size)
                row["fp32_model_only_ips"] = len(batch) / (time.perf_counter() - t)
                fp32_vectors.update(zip(idx, got, strict=True))
                if int8 is not None:
                    waited += wait_for_quiet((prototype.pid,))
                    t = time.perf_counter()
                    got = int8.image.encode_images(batch, batch_size=config.batch_size)
                    row["int8_model_only_ips"] = len(batch) / (time.perf_counter() - t)
                    int8_vectors.update(zip(idx, got, strict=True))
                    _delete_all_images(store)
                    waited += wait_for_quiet((prototype.pid,))
                    report = run_ingest(settings, int8, store, paths=photos, show_progress=False)
                    row["int8_ingest_ips"] = report.images_per_s
            row["other_cores"] = window.other_cores
            row["steal_cores"] = window.steal_cores
            row["waited_for_quiet_s"] = waited
            rows.append(row)
            log.info("ingest round %d: %s", rnd + 1, {k: round(v, 3) for k, v in row.items()})
    finally:
        store.close()
        prototype.close()

    def med(key: str) -> float:
        return median([r[key] for r in rows if key in r])

    def med_ratio(a: str, b: str) -> float:
        return median([ratio(r[a], r[b]) for r in rows if a in r and b in r])

    result: dict[str, Any] = {
        "model": model,
        "default_precision": default.precision,
        "device": default.device,
        "batch_size": config.batch_size,
        "photos": len(photos),
        "photo_size": f"{config.photo_size[0]}x{config.photo_size[1]}",
        "photo_mb_mean": round(float(np.mean([p.stat().st_size for p in photos])) / 1e6, 2),
        "rounds": config.rounds,
        "default_load_s": round(default_load_s, 2),
        "default_load_memory": load_memory,
        "first_ingest_with_prompt_encoding_s": round(first_run_s, 2),
        "prompts_encoded": len(prompts),
        "first_ingest_new": first.new,
        "model_only_ips": round(med("model_only_ips"), 3),
        "ingest_ips": round(med("ingest_ips"), 3),
        "ingest_encode_share": round(med("ingest_encode_share"), 3),
        "prototype_ips": round(med("prototype_ips"), 3),
        "fp32_model_only_ips": round(med("fp32_model_only_ips"), 3),
        "ingest_vs_model_only": round(med_ratio("ingest_ips", "model_only_ips"), 3),
        "ingest_vs_prototype": round(med_ratio("ingest_ips", "prototype_ips"), 3),
        "default_vs_fp32_speed": round(med_ratio("model_only_ips", "fp32_model_only_ips"), 3),
        "other_cores_median": round(med("other_cores"), 2),
        "steal_cores_median": round(med("steal_cores"), 3),
        "rounds_detail": [{k: round(v, 4) for k, v in r.items()} for r in rows],
    }
    text_fp32 = fp32.text.encode_texts(prompts)
    idx = sorted(fp32_vectors)
    reference = np.stack([fp32_vectors[i] for i in idx])
    assert default_vectors is not None
    result["fidelity_default_vs_fp32"] = fidelity(
        reference, default_vectors[idx], text_fp32, default.text.encode_texts(prompts)
    )
    result["rewrites_vs_plain_fp32"] = rewrites_vs_plain(model, inputs[:8], prompts, fp32)
    result["default_params"] = param_report(default)
    if int8 is not None:
        result["int8_model_only_ips"] = round(med("int8_model_only_ips"), 3)
        result["int8_vs_fp32_speed"] = round(med_ratio("int8_model_only_ips", "fp32_model_only_ips"), 3)
        result["int8_vs_default_speed"] = round(med_ratio("int8_model_only_ips", "model_only_ips"), 3)
        result["int8_ingest_ips"] = round(med("int8_ingest_ips"), 3)
        result["int8_ingest_vs_prototype"] = round(med_ratio("int8_ingest_ips", "prototype_ips"), 3)
        result["fidelity_int8_vs_fp32"] = fidelity(
            reference, np.stack([int8_vectors[i] for i in idx]), text_fp32, int8.text.encode_texts(prompts)
        )
    result["cuda"] = _cuda_note()
    result["_encoder"] = default
    result["_settings"] = settings
    del fp32, int8
    return result


def rewrites_vs_plain(model: str, images: list[Image.Image], texts: list[str], fp32: Any) -> dict[str, Any]:
    """The product's fp32 encoder, with its rewrites of CLIP (class-token last layer, folded quick_gelu,
    packed Linear weights), against the same model loaded plainly through sentence-transformers and
    run untouched: the rewrites must not change the answers."""
    from sentence_transformers import SentenceTransformer

    from core.model import model_thread

    def plain_vectors() -> tuple[np.ndarray, np.ndarray]:
        import torch

        plain = SentenceTransformer(model, device=fp32.device).eval()
        with torch.inference_mode():
            encode = {"convert_to_numpy": True, "normalize_embeddings": True, "show_progress_bar": False}
            return plain.encode(images, batch_size=8, **encode), plain.encode(texts, **encode)

    plain_images, plain_texts = model_thread().call(plain_vectors)
    ours_images, ours_texts = fp32.image.encode_images(images), fp32.text.encode_texts(texts)
    return {
        "images": len(images),
        "texts": len(texts),
        "cosine_image_min": round(float(np.sum(plain_images * ours_images, axis=1).min()), 7),
        "cosine_text_min": round(float(np.sum(plain_texts * ours_texts, axis=1).min()), 7),
        "max_abs_diff": round(
            float(max(np.abs(plain_images - ours_images).max(), np.abs(plain_texts - ours_texts).max())), 7
        ),
    }


def param_report(encoder: Any) -> dict[str, Any]:
    """Parameter dtypes and bytes of an encoder's module, and what fp32 would take."""
    module = encoder.torch_module()
    params = list(module.parameters())
    nbytes = sum(p.numel() * p.element_size() for p in params)
    count = sum(p.numel() for p in params)
    return {
        "dtypes": sorted({str(p.dtype).replace("torch.", "") for p in params}),
        "parameters_m": round(count / 1e6, 1),
        "param_mib": round(nbytes / 2**20, 1),
        "fp32_param_mib": round(count * 4 / 2**20, 1),
    }


def _cuda_note() -> str:
    import torch

    if not torch.cuda.is_available():
        return "no CUDA on this machine: the fp16 GPU path was not measured"
    return f"CUDA present ({torch.cuda.get_device_name(0)}): the default measured above is fp16 on it"


def _pid() -> int:
    return os.getpid()
