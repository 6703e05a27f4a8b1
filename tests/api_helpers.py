"""What the API tests share: the one error-shape assertion, a small ingested library, app/client fixtures.

Test modules load this file as a pytest plugin (`pytest_plugins = ["tests.api_helpers"]`), so its
session fixtures exist once per session (the embedded shard can be opened only once) and its asserts are
rewritten by pytest.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.factory import create_app
from core.ids import image_point_id, sha256_hex
from core.model import ClipModel
from core.settings import Settings
from core.store import StoreUnavailable, VectorStore, open_store
from tests.image_factory import jpeg_bytes, photo, write

ERROR_KEYS = {"code", "message", "details"}
LIBRARY_SIZE = 20
SECRET = "wonders-secret-outside-the-library-7f3a"
FOLDERS = ("north", "south", "east", "west")
ATTRIBUTED = "north/photo_0.jpg"


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert the API's one error shape: JSON {"error": {"code": str, "message": str}} and nothing else.

    Works for Flask test responses and `requests` responses; returns the inner error object."""
    data = response.get_data() if hasattr(response, "get_data") else response.content
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {data[:300]!r}"
    content_type = response.headers.get("Content-Type", "")
    assert content_type.startswith("application/json"), f"error is not JSON: {content_type!r}"
    body = json.loads(data)
    assert isinstance(body, dict) and set(body) == {"error"}, f"unexpected top level: {body!r}"
    error = body["error"]
    assert isinstance(error, dict), error
    assert set(error) <= ERROR_KEYS, f"unexpected error fields: {sorted(set(error) - ERROR_KEYS)}"
    assert isinstance(error.get("code"), str) and error["code"], error
    assert isinstance(error.get("message"), str) and error["message"].strip(), error
    if code is not None:
        assert error["code"] == code, f"expected code {code!r}, got {error['code']!r}: {error['message']}"
    return error


def upload(data: bytes, name: str = "photo.jpg") -> dict[str, Any]:
    """A multipart form with the photo in the field `image` (a fresh stream per call)."""
    return {"image": (io.BytesIO(data), name)}


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time (to prove nothing was written)."""
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def declared_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def point_id_of(path: Path) -> str:
    """The id ingest gives the file at `path` (derived from its bytes)."""
    return image_point_id(sha256_hex(path.read_bytes()))


class FlakyStore:
    """A store that answers like the wrapped one until `down` is set, then raises StoreUnavailable
    with `message` (a real store's message may carry a server path)."""

    def __init__(self, inner: VectorStore, message: str = "test: the vector store is down") -> None:
        self._inner = inner
        self.message = message
        self.down = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StoreUnavailable(self.message)
            return attribute(*args, **kwargs)

        return call


@dataclass
class ApiLibrary:
    """A small ingested library: settings, the open store and every file's point id."""

    root: Path
    settings: Settings
    store: VectorStore
    ids: dict[str, str]  # library-relative path -> point id

    def path_of(self, point_id: str) -> Path:
        """The library file behind a point id."""
        relative = next(rel for rel, pid in self.ids.items() if pid == point_id)
        return self.settings.images_dir / relative

    def settings_with(self, **overrides: Any) -> Settings:
        """These settings with some values changed (same library, data folder and model)."""
        values = {**self.settings.model_dump(), **overrides}
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def api_library(tmp_path_factory: pytest.TempPathFactory, encoder: ClipModel) -> Iterator[ApiLibrary]:
    """20 distinct photos in four folders (one with attribution), ingested once for the session.

    A file with a secret marker lies beside the library, to prove that nothing outside it is served."""
    from ingest.pipeline import run_ingest

    root = tmp_path_factory.mktemp("api")
    images = root / "images"
    for i in range(LIBRARY_SIZE):
        write(images / FOLDERS[i % len(FOLDERS)] / f"photo_{i}.jpg", jpeg_bytes(photo(2000 + i, (320, 240))))
    (images / "north" / "manifest.json").write_text(
        json.dumps(
            {
                "photo_0.jpg": {
                    "title": "Test photo",
                    "author": "Jane Doe",
                    "license": "CC BY-SA 4.0",
                    "license_url": "https://creativecommons.org/licenses/by-sa/4.0/",
                    "source_url": "https://commons.wikimedia.org/wiki/File:Test.jpg",
                    "source": "wikimedia",
                }
            }
        ),
        encoding="utf-8",
    )
    (root / "secret.txt").write_text(SECRET, encoding="utf-8")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        clip_model=encoder.model_name,
        clip_device="cpu",
        clip_precision="fp32",
        images_dir=images,
        data_dir=root / "data",
        qdrant_url=None,
    )
    store = open_store(settings)
    report = run_ingest(settings, encoder, store, show_progress=False)
    assert report.total_points == LIBRARY_SIZE, report.summary()
    ids = {p.relative_to(images).as_posix(): point_id_of(p) for p in sorted(images.rglob("*.jpg"))}
    yield ApiLibrary(root=root, settings=settings, store=store, ids=ids)
    store.close()


@pytest.fixture
def make_app(api_library: ApiLibrary, encoder: ClipModel) -> Callable[..., Flask]:
    """Build an app over the session library, with settings overrides (e.g. max_upload_mb=1)."""

    def build(store: Any = None, **overrides: Any) -> Flask:
        settings = api_library.settings_with(**overrides) if overrides else api_library.settings
        return create_app(settings, encoder, store if store is not None else api_library.store)

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """A ready app over the session library (fresh per test: its own query cache)."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Flask's test client for `app`."""
    return app.test_client()
