"""`python -m ingest` as a person runs it: the summary, its exit codes, the hint for an empty library, a
bad setting, and a run killed with SIGKILL that the next run completes exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.settings import Settings
from core.store import IMAGES
from core.store.embedded import EmbeddedStore
from core.thumbnails import thumb_path
from devtools.tiny_clip import build_tiny_clip
from ingest.__main__ import main as ingest_main
from tests.image_factory import jpeg_bytes, library_with_every_case, photo, write

pytestmark = pytest.mark.slow

PAYLOAD_KEYS = {
    "path",
    "sha256",
    "bytes",
    "width",
    "height",
    "format",
    "label",
    "confidence",
    "top3",
    "labels_version",
    "attribution",
    "ingested_at",
}


@pytest.fixture
def env(subprocess_env: dict[str, str]) -> dict[str, str]:
    """The product's environment for the test settings, with one torch thread: on a 2-core machine the
    decode threads and torch's OpenMP workers otherwise fight, and the tiny model runs several times slower."""
    return {**subprocess_env, "TORCH_THREADS": "1"}


def run_ingest_cli(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m ingest ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "ingest", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_summary_then_model_mismatch(settings: Settings, env: dict[str, str], tmp_path: Path) -> None:
    library_with_every_case(settings.images_dir)
    first = run_ingest_cli(env, tmp_path, "--quiet")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "new: 12" in out and "already indexed: 0" in out and "duplicates: 1" in out
    assert "skipped: 5" in out and "images/s" in out
    assert "collection now holds 12 images" in out
    assert "bomb.png: too many pixels" in out and "empty.jpg: empty file" in out
    assert "cross-check vs FAISS flat" in out
    assert (settings.data_dir / "crosscheck.json").is_file()

    other = build_tiny_clip(tmp_path / "tiny-clip-24", dim=24, seed=1)
    mismatch = run_ingest_cli({**env, "CLIP_MODEL": str(other)}, tmp_path, "--quiet")
    assert mismatch.returncode == 2
    assert "error:" in mismatch.stderr
    assert "--recreate" in mismatch.stderr
    assert "Traceback" not in mismatch.stderr


@pytest.mark.parametrize("library", ["missing", "empty", "only-text"])
def test_if_empty_hint(settings: Settings, env: dict[str, str], tmp_path: Path, library: str) -> None:
    if library != "missing":
        settings.images_dir.mkdir(parents=True)
    if library == "only-text":
        write(settings.images_dir / "readme.txt", b"put photos here")
    result = run_ingest_cli(env, tmp_path, "--if-empty-hint", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "make dataset" in result.stdout
    assert str(settings.images_dir) in result.stdout
    assert not (settings.data_dir / "qdrant").exists()  # no model loaded, no store created


@pytest.mark.parametrize(("variable", "value"), [("ENCODE_BATCH_SIZE", "0"), ("CLIP_DEVICE", "tpu")])
def test_invalid_setting_exits_2_naming_it(
    env: dict[str, str], tmp_path: Path, variable: str, value: str
) -> None:
    result = run_ingest_cli({**env, variable: value}, tmp_path, timeout=60)
    assert result.returncode == 2
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


def in_process_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], cwd: Path) -> None:
    """Give this process the environment the subprocesses get, for `ingest.__main__.main()` (but torch's
    thread count, which would outlive the test, is left alone)."""
    env = {**env, "TORCH_THREADS": "0"}
    for name in list(os.environ):
        if name not in env:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cwd)


def test_broken_classes_file_exits_2(
    settings: Settings,
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write(settings.images_dir / "a.jpg", jpeg_bytes(photo(1)))
    broken = write(tmp_path / "classes.yaml", b"classes:\n  - id: Not An Id\n")
    in_process_env(monkeypatch, {**env, "CLASSES_FILE": str(broken)}, tmp_path)
    assert ingest_main(["--quiet", "--no-crosscheck"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and str(broken) in err and "'id' must be" in err


def test_store_held_by_another_opener_exits_1(
    settings: Settings,
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write(settings.images_dir / "a.jpg", jpeg_bytes(photo(1)))
    holder = EmbeddedStore(settings.shard_dir)
    holder.ensure_collection(IMAGES, {"model": settings.clip_model, "dim": 16, "image_size": 32})
    try:
        in_process_env(monkeypatch, env, tmp_path)
        assert ingest_main(["--quiet", "--no-crosscheck", "--no-handoff"]) == 1
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert "error:" in err and "open in another process" in err


def complete_points(settings: Settings) -> list[dict[str, object]]:
    """Open the shard left behind (the process is gone) and check every point is whole."""
    store = EmbeddedStore(settings.shard_dir)
    try:
        points = list(store.scroll(IMAGES))
    finally:
        store.close()
    for point in points:
        assert set(point.payload) >= PAYLOAD_KEYS, sorted(point.payload)
        assert thumb_path(settings.thumbs_dir, point.id).is_file()  # written before the point
    return [p.payload for p in points]


def thumbnail_count(settings: Settings) -> int:
    """Finished thumbnails (temporary files start with a dot)."""
    if not settings.thumbs_dir.is_dir():
        return 0
    return sum(1 for p in settings.thumbs_dir.rglob("*.jpg") if not p.name.startswith("."))


def test_kill_9_then_rerun_completes_exactly(settings: Settings, env: dict[str, str], tmp_path: Path) -> None:
    photos = 150
    for i in range(photos):
        write(
            settings.images_dir / f"batch_{i % 3}" / f"p{i:03d}.jpg", jpeg_bytes(photo(1000 + i, (160, 120)))
        )
    env = {**env, "ENCODE_BATCH_SIZE": "2"}  # many small batches: many points to be killed between
    process = subprocess.Popen(
        [sys.executable, "-m", "ingest", "--no-crosscheck", "--quiet"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while thumbnail_count(settings) < 4:
            assert process.poll() is None, "ingest ended before it could be killed"
            assert time.monotonic() < deadline, "no thumbnails appeared"
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    survivors = complete_points(settings)
    assert len(survivors) < photos, "the kill came too late to test anything"

    rerun = run_ingest_cli(env, tmp_path, "--no-crosscheck", "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    assert f"new: {photos - len(survivors)} " in rerun.stdout
    assert f"already indexed: {len(survivors)} " in rerun.stdout

    final = complete_points(settings)
    assert len(final) == photos
    assert len({p["sha256"] for p in final}) == photos
    assert sorted(str(p["path"]) for p in final) == sorted(
        str(p.relative_to(settings.images_dir).as_posix()) for p in settings.images_dir.rglob("*.jpg")
    )
    assert thumbnail_count(settings) == photos
