"""Shared fixtures: the tiny CLIP, settings in a temporary folder, stores and the app.

Everything runs offline: HF_HUB_OFFLINE=1 is set before any Hugging Face import.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from core.model import ClipModel
from core.settings import Settings
from devtools.tiny_clip import build_tiny_clip

REPO = Path(__file__).resolve().parent.parent

# The tiny model gains nothing from a second thread, and torch's spinning workers would fight the
# decode threads and the subprocesses the suite starts for the two cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLIP saved to disk, loadable by sentence-transformers like the real one."""
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def encoder(tiny_model_dir: Path) -> ClipModel:
    """The tiny CLIP loaded through the product's encoder, in fp32 on the CPU."""
    return ClipModel(str(tiny_model_dir), device="cpu", precision="fp32")


@pytest.fixture
def make_settings(tmp_path: Path, tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    """Build Settings rooted in this test's temporary folder, with overrides."""

    def build(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "clip_model": str(tiny_model_dir),
            "clip_device": "cpu",
            "clip_precision": "fp32",
            "images_dir": tmp_path / "images",
            "data_dir": tmp_path / "data",
            "encode_batch_size": 4,
            "qdrant_url": None,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@pytest.fixture
def settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    """Default test settings (embedded store under tmp_path)."""
    return make_settings()


@pytest.fixture
def subprocess_env(settings: Settings) -> Iterator[dict[str, str]]:
    """Environment for running the product's commands as subprocesses against `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "CLIP_"))}
    env.update(
        {
            "CLIP_MODEL": settings.clip_model,
            "CLIP_DEVICE": "cpu",
            "CLIP_PRECISION": "fp32",
            "IMAGES_DIR": str(settings.images_dir),
            "DATA_DIR": str(settings.data_dir),
            "ENCODE_BATCH_SIZE": str(settings.encode_batch_size),
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(REPO),
        }
    )
    yield env


@pytest.fixture(scope="session")
def live_library(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, object]:
    """A small ingested library (12 photos of distinct colours, some with attribution) for live servers."""
    from core.store.embedded import EmbeddedStore
    from ingest.pipeline import run_ingest
    from tests.image_factory import jpeg_bytes, photo, write

    root = tmp_path_factory.mktemp("live")
    images, data = root / "images", root / "data"
    for i in range(12):
        write(images / f"class_{i % 3}" / f"photo_{i}.jpg", jpeg_bytes(photo(1000 + i, (480, 360))))
    (images / "class_0" / "manifest.json").write_text(
        '{"photo_0.jpg": {"title": "Test photo", "author": "Jane Doe", "license": "CC BY-SA 4.0", '
        '"license_url": "https://creativecommons.org/licenses/by-sa/4.0/", '
        '"source_url": "https://commons.wikimedia.org/wiki/File:Test.jpg", "source": "wikimedia"}}',
        encoding="utf-8",
    )
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        clip_model=str(tiny_model_dir),
        clip_device="cpu",
        clip_precision="fp32",
        images_dir=images,
        data_dir=data,
    )
    store = EmbeddedStore(settings.shard_dir)
    encoder = ClipModel(str(tiny_model_dir), device="cpu", precision="fp32")
    run_ingest(settings, encoder, store, show_progress=False)
    store.close()
    env = {
        "CLIP_MODEL": str(tiny_model_dir),
        "CLIP_DEVICE": "cpu",
        "CLIP_PRECISION": "fp32",
        "IMAGES_DIR": str(images),
        "DATA_DIR": str(data),
        "TORCH_THREADS": "1",
    }
    return {"root": root, "images": images, "data": data, "env": env}


@pytest.fixture(scope="session")
def live_server(live_library: dict[str, object], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """gunicorn serving the app (embedded store, tiny model) over `live_library`, for the whole session.

    Tests that add photos must use their own server (see devtools/live_server.py) so this one stays fixed."""
    from devtools.live_server import start_gunicorn

    log = tmp_path_factory.mktemp("live-log") / "gunicorn.log"
    server = start_gunicorn(dict(live_library["env"]), log)  # type: ignore[arg-type]
    server.extra.update(live_library)
    yield server
    server.stop()
