"""The worker-process decoder (ingest/decode_workers.py) and the GPU feed (ingest/device_feed.py): the
same vectors, payloads and skip reasons as the thread decoder, every bad file still skipped, nothing
lost and no worker left behind when the job is killed with SIGKILL, and the device path's pieces
(batch sizing, pinned memory only on CUDA, CLIP's preprocessing) checked on the CPU."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from core.model import ClipModel
from core.settings import Settings
from core.store import IMAGES, open_store
from ingest.decode_workers import DecodeOptions, WorkerPlan, clip_pixels, decode_file, plan_workers
from ingest.device_feed import (
    BYTES_PER_IMAGE,
    MAX_DEVICE_BATCH,
    DeviceFeed,
    PixelSpec,
    device_batch_size,
    feed_for_clip,
)
from ingest.pipeline import run_ingest
from tests import image_factory
from tests.image_factory import jpeg_bytes, library_with_every_case, photo, write
from tests.test_ingest_cli import complete_points, run_ingest_cli, thumbnail_count

_bomb_png = functools.cache(image_factory.bomb_png)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread (see tests/test_ingest.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_plan_workers() -> None:
    assert plan_workers(0, "cpu", 2) == WorkerPlan(2, processes=False)  # as before on small machines
    assert plan_workers(0, "cpu", 4) == WorkerPlan(4, processes=False)
    assert plan_workers(0, "cpu", 16) == WorkerPlan(8, processes=True)
    assert plan_workers(0, "cuda", 16) == WorkerPlan(15, processes=True)  # one core feeds the GPU
    assert plan_workers(0, "cuda:1", 1) == WorkerPlan(1, processes=True)
    assert plan_workers(3, "cpu", 2) == WorkerPlan(3, processes=True)  # asked for: processes
    assert plan_workers(500, "cuda", 64).workers == 32


def ingest_with(settings: Settings, encoder: ClipModel) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Ingest the library into the settings' store: {path: (payload, vector)}, skipped."""
    store = open_store(settings)
    try:
        report = run_ingest(settings, encoder, store, show_progress=False)
        points = {p.payload["path"]: (p.payload, p.vector) for p in store.scroll(IMAGES, with_vectors=True)}
    finally:
        store.close()
    return points, sorted(report.skipped)


def test_processes_give_what_threads_give(
    make_settings: Any, encoder: ClipModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_factory, "bomb_png", _bomb_png)
    images = tmp_path / "images"
    expected = library_with_every_case(images)
    threads = make_settings(images_dir=images, data_dir=tmp_path / "threads", decode_workers=0)
    processes = make_settings(images_dir=images, data_dir=tmp_path / "processes", decode_workers=2)
    assert (
        not plan_workers(threads.decode_workers, "cpu", os.cpu_count() or 1).processes
        or (os.cpu_count() or 1) > 4
    )
    assert plan_workers(processes.decode_workers, "cpu", 2).processes

    by_threads, skipped_threads = ingest_with(threads, encoder)
    by_processes, skipped_processes = ingest_with(processes, encoder)

    assert len(by_processes) == expected["indexed"] == 12
    assert set(by_processes) == set(by_threads)
    for path, (payload, vector) in by_processes.items():
        other_payload, other_vector = by_threads[path]
        assert {k: v for k, v in payload.items() if k != "ingested_at"} == {
            k: v for k, v in other_payload.items() if k != "ingested_at"
        }, path
        np.testing.assert_allclose(vector, other_vector, atol=1e-6)
    # Bad files are skipped with the same reasons, whoever decodes.
    assert len(skipped_processes) == expected["skipped"] == 5
    assert skipped_processes == skipped_threads
    assert any("too many pixels" in reason for _, reason in skipped_processes)
    assert any("truncated" in reason for _, reason in skipped_processes)


def test_a_file_changed_after_hashing_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jpg", jpeg_bytes(photo(1)))
    options = DecodeOptions(max_pixels=10_000_000, min_side=64, thumb_size=64, clip_size=32)
    good = decode_file(path, __import__("hashlib").sha256(path.read_bytes()).hexdigest(), options)
    assert good.error is None and good.thumb and good.image is not None
    assert good.pixels is not None and good.pixels.shape == (32, 32, 3) and good.pixels.dtype == np.uint8
    changed = decode_file(path, "0" * 64, options)
    assert changed.image is None and changed.error is not None and "changed" in changed.error
    missing = decode_file(tmp_path / "gone.jpg", "0" * 64, options)
    assert missing.error is not None and "cannot read" in missing.error


@pytest.mark.parametrize("size", [(300, 200), (200, 300), (225, 224), (50, 40)])
def test_clip_pixels_match_clips_image_processor(tiny_model_dir: Path, size: tuple[int, int]) -> None:
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor.from_pretrained(tiny_model_dir)
    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (*size[::-1], 3), dtype=np.uint8))
    side = int(processor.crop_size["height"])
    ours = (clip_pixels(image, side).astype(np.float32) / 255 - processor.image_mean) / processor.image_std
    theirs = processor(images=image, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
    assert ours.shape == theirs.shape == (side, side, 3)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_device_batch_size() -> None:
    assert device_batch_size("cpu", 16, None) == 16
    assert device_batch_size("cpu", 16, 80 << 30) == 16  # a CPU keeps ENCODE_BATCH_SIZE
    assert device_batch_size("cuda", 16, 80 << 30) == MAX_DEVICE_BATCH
    mid = device_batch_size("cuda", 16, 64 * BYTES_PER_IMAGE * 2)
    assert mid == 64 and mid % 8 == 0
    assert device_batch_size("cuda", 16, 1 << 20) == 16  # never below the configured size


def test_device_feed_on_the_cpu_gives_the_encoders_vectors(encoder: ClipModel, tmp_path: Path) -> None:
    module = encoder.torch_module()[0]  # type: ignore[index]
    clip = module.model if hasattr(module, "model") else module.auto_model
    feed = feed_for_clip(clip, module.processor, "cpu", max_batch=4)
    assert not feed.pinned  # pinned memory only on CUDA
    assert feed.dtype == torch.float32
    images = [Image.fromarray(np.asarray(photo(40 + i, (96 + 8 * i, 72)))) for i in range(6)]
    pixels = [clip_pixels(im, feed.spec.size) for im in images]
    tags = ["a", "b"]
    out = list(feed.encode_batches(zip(tags, [pixels[:4], pixels[4:]], strict=True)))
    assert [tag for tag, _ in out] == tags
    vectors = np.concatenate([v for _, v in out])
    assert vectors.shape == (6, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reference = encoder.image.encode_images(images)
    assert np.min(np.sum(vectors * reference, axis=1)) > 0.9999
    with pytest.raises(ValueError):
        feed.submit(pixels * 1)  # 6 > max_batch 4


def test_device_feed_normalises_in_the_models_precision() -> None:
    seen: list[torch.Tensor] = []

    def features(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return x.mean(dim=(2, 3))

    spec = PixelSpec(size=4, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    feed = DeviceFeed(features, "cpu", torch.bfloat16, spec, max_batch=2)
    pixels = np.full((2, 4, 4, 3), 255, dtype=np.uint8)
    pixels[1] = 0
    vectors = feed.submit(pixels).result()
    assert seen[0].dtype == torch.bfloat16 and seen[0].shape == (2, 3, 4, 4)
    assert float(seen[0][0, 0, 0, 0]) == pytest.approx(2.0) and float(seen[0][1, 0, 0, 0]) == pytest.approx(
        -2.0
    )
    np.testing.assert_allclose(vectors, [[3**-0.5] * 3, [-(3**-0.5)] * 3], atol=1e-3)


def descendants(pid: int) -> set[int]:
    """Every process below `pid`."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent and int(entry.name) not in found:
                found.add(int(entry.name))
                frontier.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


@pytest.mark.slow
def test_kill_9_with_worker_processes_loses_nothing_and_leaves_no_worker(
    settings: Settings, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    photos = 120
    for i in range(photos):
        write(settings.images_dir / f"b{i % 3}" / f"p{i:03d}.jpg", jpeg_bytes(photo(2000 + i, (160, 120))))
    env = {**subprocess_env, "TORCH_THREADS": "1", "ENCODE_BATCH_SIZE": "2", "DECODE_WORKERS": "2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ingest", "--no-crosscheck", "--quiet"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while thumbnail_count(settings) < 4:
            assert process.poll() is None, "ingest ended before it could be killed"
            assert time.monotonic() < deadline, "no thumbnails appeared"
            workers |= descendants(process.pid)
            time.sleep(0.005)
        workers |= descendants(process.pid)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert len(workers) >= 3, "a forkserver and two decoding processes were expected"
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)], "worker processes outlived the killed job"

    survivors = complete_points(settings)
    assert len(survivors) < photos, "the kill came too late to test anything"
    rerun = run_ingest_cli(env, tmp_path, "--no-crosscheck", "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    assert f"new: {photos - len(survivors)} " in rerun.stdout
    final = complete_points(settings)
    assert len(final) == photos == len({p["sha256"] for p in final})
    assert thumbnail_count(settings) == photos
