"""The multilingual text tower over real HTTP: gunicorn started as `make run` starts it, with
MULTILINGUAL_MODEL pointing at the tiny M-CLIP (16-d, like the tiny CLIP), at one of another size, or
unset beside a CLIP that is not ViT-L/14 (the default then switches it off)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

pytest.register_assert_rewrite("tests.api_helpers")

from core.model import ClipModel  # noqa: E402
from core.settings import Settings  # noqa: E402
from devtools.live_server import LiveServer, start_gunicorn  # noqa: E402
from devtools.tiny_mclip import build_tiny_mclip  # noqa: E402
from tests.api_helpers import assert_error  # noqa: E402

RUSSIAN = "Московский Кремль ночью"
ENGLISH = "the Eiffel Tower at night"


@pytest.fixture(scope="module")
def ml_library(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    """Six photos ingested with the tiny CLIP, and the tiny M-CLIP of the same size beside them."""
    from core.store.embedded import EmbeddedStore
    from ingest.pipeline import run_ingest
    from tests.image_factory import jpeg_bytes, photo, write

    root = tmp_path_factory.mktemp("ml-live")
    images, data = root / "images", root / "data"
    for i in range(6):
        write(images / f"class_{i % 2}" / f"photo_{i}.jpg", jpeg_bytes(photo(3000 + i, (320, 240))))
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        clip_model=str(tiny_model_dir),
        clip_device="cpu",
        clip_precision="fp32",
        images_dir=images,
        data_dir=data,
    )
    store = EmbeddedStore(settings.shard_dir)
    run_ingest(
        settings, ClipModel(str(tiny_model_dir), device="cpu", precision="fp32"), store, show_progress=False
    )
    store.close()
    mclip = build_tiny_mclip(root / "tiny-mclip", dim=16).folder
    env = {
        "CLIP_MODEL": str(tiny_model_dir),
        "CLIP_DEVICE": "cpu",
        "CLIP_PRECISION": "fp32",
        "IMAGES_DIR": str(images),
        "TORCH_THREADS": "1",
    }
    return {"root": root, "data": data, "mclip": mclip, "env": env}


def serve(library: dict[str, Any], tmp_path: Path, multilingual: str, wait_ready: bool) -> LiveServer:
    """gunicorn over a copy of the library's data (the embedded shard is one process's)."""
    data = tmp_path / "data"
    shutil.copytree(library["data"], data)
    env = {**library["env"], "DATA_DIR": str(data), "MULTILINGUAL_MODEL": multilingual}
    return start_gunicorn(env, tmp_path / "gunicorn.log", wait_ready=wait_ready)


def ready_when(server: LiveServer, done: Any, timeout: float = 90) -> requests.Response:
    """Poll /api/ready until `done(response)`; the last response."""
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(f"{server.url}/api/ready", timeout=10)
        if done(response) or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ml_server(ml_library: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """gunicorn with the tiny M-CLIP, once its multilingual tower is ready (for the module)."""
    folder = tmp_path_factory.mktemp("ml-server")
    server = serve(ml_library, folder, str(ml_library["mclip"]), wait_ready=True)
    try:
        response = ready_when(server, lambda r: r.json()["towers"]["multilingual"]["state"] != "loading")
        assert response.json()["towers"]["multilingual"]["state"] == "ready", response.text
        yield server
    finally:
        server.stop()


def get(server: LiveServer, q: str, **params: Any) -> dict[str, Any]:
    """GET /api/search, asserted 200."""
    response = requests.get(f"{server.url}/api/search", params={"q": q, **params}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_over_http_cyrillic_goes_to_the_multilingual_tower_english_to_clip(ml_server: LiveServer) -> None:
    ready = requests.get(f"{ml_server.url}/api/ready", timeout=10).json()
    assert ready["towers"]["clip"]["state"] == "ready"
    russian, english = get(ml_server, RUSSIAN), get(ml_server, ENGLISH)
    assert russian["text_encoder"] == "multilingual" and english["text_encoder"] == "clip"
    assert russian["text_encoder_fallback"] is None and russian["truncated"] is False
    assert get(ml_server, RUSSIAN, text_encoder="clip")["text_encoder"] == "clip"
    assert get(ml_server, ENGLISH, text_encoder="multilingual")["text_encoder"] == "multilingual"
    assert ml_server.log().count("multilingual text tower ready") == 1


def test_over_http_embed_gives_the_towers_vectors(ml_server: LiveServer) -> None:
    texts = [RUSSIAN, ENGLISH, RUSSIAN]
    response = requests.post(f"{ml_server.url}/api/embed", json={"texts": texts}, timeout=30)
    assert response.status_code == 200, response.text
    items = response.json()["embeddings"]
    assert [e["tower"] for e in items] == ["multilingual", "clip", "multilingual"]
    vectors = np.asarray([e["vector"] for e in items], dtype=np.float32)
    assert vectors.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    clip = requests.post(
        f"{ml_server.url}/api/embed", json={"texts": [RUSSIAN], "text_encoder": "clip"}, timeout=30
    ).json()["embeddings"][0]
    assert clip["tower"] == "clip" and not np.allclose(clip["vector"], vectors[0])


def test_an_explicit_tower_of_another_size_is_refused_at_start(
    ml_library: dict[str, Any], tmp_path: Path
) -> None:
    eight = build_tiny_mclip(tmp_path / "eight-d", dim=8).folder
    server = serve(ml_library, tmp_path, str(eight), wait_ready=False)
    try:
        response = ready_when(server, lambda r: r.status_code == 503 and "mismatch" in r.text)
        error = assert_error(response, 503, "text_encoder_mismatch")
        assert "8-d" in error["message"] and "MULTILINGUAL_MODEL" in error["message"]
        search = requests.get(f"{server.url}/api/search", params={"q": ENGLISH}, timeout=30)
        assert_error(search, 503, "text_encoder_mismatch")
        assert "refusing to serve" in server.log()
    finally:
        server.stop()


def test_the_default_is_switched_off_with_one_log_line_beside_another_clip(live_server: LiveServer) -> None:
    """The session's server: MULTILINGUAL_MODEL unset, CLIP_MODEL the tiny CLIP (not ViT-L/14)."""
    ready = requests.get(f"{live_server.url}/api/ready", timeout=10).json()
    state = ready["towers"]["multilingual"]
    assert state["state"] == "off" and state["model"] is None and "ViT-L/14" in state["reason"]
    body = get(live_server, RUSSIAN)
    assert body["text_encoder"] == "clip" and body["text_encoder_fallback"] == "off"
    lines = [line for line in live_server.log().splitlines() if "multilingual" in line]
    assert len(lines) == 1 and "multilingual text tower off" in lines[0], lines


# -- the UI, in Debian's Chromium ------------------------------------------------------------------------
def _browser_page(locale: str) -> Iterator[Any]:
    """A fresh page in headless Chromium with `locale`; fails on uncaught errors and CSP violations."""
    from tests.browser_support import CHROMIUM, LAUNCH_ARGS, PageProblems

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    problems = PageProblems()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        context = browser.new_context(locale=locale)
        page = context.new_page()
        problems.attach(page)
        yield page
        context.close()
        browser.close()
    assert not problems.items, problems.items


@pytest.fixture
def ru_page() -> Iterator[Any]:
    """A page of a Russian browser."""
    yield from _browser_page("ru-RU")


@pytest.mark.browser
def test_the_ui_drops_the_english_hint_and_shows_the_multilingual_tower(
    ru_page: Any, ml_server: LiveServer
) -> None:
    from playwright.sync_api import expect

    from tests.browser_support import screenshot

    ru_page.goto(ml_server.url + "/")
    ru_page.wait_for_selector("html[data-ready='true']")
    expect(ru_page.locator("#hint")).to_be_hidden()
    examples = ru_page.locator("button.example")
    expect(examples.first).to_have_text("Эйфелева башня ночью")
    assert all(needs_cyrillic(text) for text in examples.all_inner_texts())
    examples.first.click()
    expect(ru_page.locator("#q")).to_have_value("Эйфелева башня ночью")
    expect(ru_page.locator("#grid > li.card:not(.skeleton)")).to_have_count(6)
    encoder = ru_page.locator("#text-encoder")
    expect(encoder).to_have_attribute("data-text-encoder", "multilingual")
    expect(encoder).to_have_text("Текстовая модель: многоязычная")
    screenshot(ru_page, "multilingual-ru")
    ru_page.fill("#q", "Eiffel Tower at night")
    ru_page.press("#q", "Enter")
    expect(encoder).to_have_attribute("data-text-encoder", "clip")
    ru_page.get_by_role("button", name="English").click()
    expect(encoder).to_have_text("Text model: CLIP (English)")
    expect(ru_page.locator("button.example").first).to_have_text("Eiffel Tower at night")


@pytest.mark.browser
def test_without_the_tower_the_hint_stays_and_the_answer_says_clip_answered(
    ru_page: Any, live_server: LiveServer
) -> None:
    from playwright.sync_api import expect

    ru_page.goto(live_server.url + "/")
    ru_page.wait_for_selector("html[data-ready='true']")
    expect(ru_page.locator("#hint")).to_be_visible()
    ru_page.fill("#q", "Эйфелева башня ночью")
    expect(ru_page.locator("#hint")).to_have_class("hint hint-strong")
    ru_page.press("#q", "Enter")
    encoder = ru_page.locator("#text-encoder")
    expect(encoder).to_have_attribute("data-text-encoder", "clip")
    expect(encoder).to_have_text(
        "Текстовая модель: CLIP (английский) · многоязычной модели на этом сервере нет"
    )


def needs_cyrillic(text: str) -> bool:
    """Whether a text holds a Cyrillic letter."""
    return any("\u0400" <= char <= "\u04ff" for char in text)
