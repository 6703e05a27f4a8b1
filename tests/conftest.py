"""Shared fixtures: the tiny CLIP, settings in a temporary folder, stores and the app.

Everything runs offline: HF_HUB_OFFLINE=1 is set before any Hugging Face import.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from core.encoder import ClipEncoder  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.tiny_clip import build_tiny_clip  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLIP saved to disk, loadable by sentence-transformers like the real one."""
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def encoder(tiny_model_dir: Path) -> ClipEncoder:
    """The tiny CLIP loaded through the product's encoder, in fp32 on the CPU."""
    return ClipEncoder(str(tiny_model_dir), device="cpu", precision="fp32")


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
