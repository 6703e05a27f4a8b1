# ruff: noqa: F811 - the browser fixtures imported from tests.test_browser are parameters here
"""Issue 13 in headless Chromium: the empty library, no request storm, indexing progress, photo identity,
a gone file, the UI's state after uploads and "more like this", the API page, and the first run as
README tells it, from a fresh clone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.live_server import LiveServer, free_port, start_gunicorn
from tests.browser_support import CHROMIUM, REPO, screenshot
from tests.image_factory import jpeg_bytes, photo, write
from tests.test_browser import browser, cards, new_page, open_app, page, search  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

OFFLINE = "could not be downloaded (no network?)"


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/w/api.php"


def _env(tiny_model_dir: Path, root: Path, **extra: str) -> dict[str, str]:
    return {
        "CLIP_MODEL": str(tiny_model_dir),
        "CLIP_DEVICE": "cpu",
        "CLIP_PRECISION": "fp32",
        "IMAGES_DIR": str(root / "images"),
        "DATA_DIR": str(root / "data"),
        "TORCH_THREADS": "1",
        **extra,
    }


@pytest.fixture(scope="module")
def empty_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A service started on an empty library, offline: its first-run download fails at once."""
    root = tmp_path_factory.mktemp("empty-live")
    env = _env(
        tiny_model_dir,
        root,
        INDEX_ON_START="true",
        FETCH_DATASET_IF_EMPTY="true",
        WIKIMEDIA_API_URL=_closed_port_url(),
    )
    server = start_gunicorn(env, root / "gunicorn.log")
    deadline = time.monotonic() + 120

    def settled() -> bool:  # the download failed, and the indexing of the (empty) library after it ended
        status = requests.get(f"{server.url}/api/ingest", timeout=30).json()
        return bool(status["fetch"]["state"] == "failed" and status["state"] != "running")

    while not settled():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.3)
    yield server
    server.stop()


# ------------------------------------------------------------------------------ 1, 17: the empty library


def test_empty_library_offline_says_what_to_do_and_sends_no_storm(
    page: Any, empty_server: LiveServer
) -> None:
    searches: list[float] = []
    page.on("request", lambda r: searches.append(time.monotonic()) if "/api/search" in r.url else None)
    open_app(page, empty_server.url)
    banner = page.locator("#banner")
    expect(banner).to_contain_text("The library is empty, and the landmark library " + OFFLINE)
    expect(banner).to_contain_text("Copy photos into the images/ folder")
    expect(banner.locator("code")).to_have_count(2)
    page.fill("#q", "hot air balloons over Cappadocia")
    page.press("#q", "Enter")
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#empty")).to_contain_text("The library is empty")
    expect(page.locator("#status")).to_have_text("The library is empty")
    page.wait_for_timeout(4000)
    assert len(searches) == 1, searches  # one search, one request: nothing retried
    screenshot(page, "empty-library-offline")


def test_a_server_that_keeps_answering_503_gets_retries_that_back_off(
    page: Any, empty_server: LiveServer
) -> None:
    sent: list[float] = []
    body = json.dumps({"error": {"code": "store_unavailable", "message": "The vector store is down."}})

    def refuse(route: Any) -> None:
        sent.append(time.monotonic())
        route.fulfill(status=503, content_type="application/json", body=body)

    open_app(page, empty_server.url)
    page.route("**/api/search?*", refuse)
    page.fill("#q", "Eiffel Tower at night")
    page.press("#q", "Enter")
    page.wait_for_timeout(7000)
    # 1 s, 2 s, 4 s (+-20%) between tries: at most 4 searches in 7 s, never dozens per second.
    gaps = [b - a for a, b in pairwise(sent)]
    assert 2 <= len(sent) <= 4, gaps
    assert all(later > earlier for earlier, later in pairwise(gaps)), gaps


# ------------------------------------------------------------------------------ 3: indexing progress


def test_indexing_progress_is_shown_and_the_counts_follow(page: Any, live_server: Any) -> None:
    stats = requests.get(f"{live_server.url}/api/stats", timeout=30).json()
    progress = {"done": 340, "state": "running"}
    counts = {"points": 5}

    def ingest(route: Any) -> None:
        route.fulfill(json={"state": progress["state"], "phase": "encoding", "done": progress["done"],
                            "total": 1000, "fetch": {"state": "off"}})  # fmt: skip

    page.route("**/api/ingest", ingest)
    page.route("**/api/stats", lambda route: route.fulfill(json={**stats, "points": counts["points"]}))
    open_app(page, live_server.url)
    line = page.locator("#indexing")
    expect(line).to_have_text("Indexing the library: 340 of 1,000 photos. Results grow as photos land.")
    expect(page.locator("#footer-text")).to_contain_text("5 photos")
    screenshot(page, "indexing-progress")
    counts["points"] = 1000
    progress.update(done=1000, state="done")
    expect(line).to_be_hidden(timeout=8000)
    expect(page.locator("#footer-text")).to_contain_text("1,000 photos", timeout=8000)  # no reload


# ------------------------------------------------------------------------------ 4, 5: photo identity, a gone file


def test_cards_and_viewer_name_the_photo(page: Any, live_server: Any) -> None:
    open_app(page, live_server.url)
    search(page, "Eiffel Tower at night")
    titles = cards(page).locator(".card-title").all_inner_texts()
    assert "Test photo" in titles and any(t.startswith("photo_") and t.endswith(".jpg") for t in titles), (
        titles
    )
    for score in cards(page).locator(".card-score").all_inner_texts():
        assert score.endswith("% match") and "-" not in score, score


def test_a_photo_whose_file_is_gone_shows_its_thumbnail_and_says_so(page: Any, live_server: Any) -> None:
    open_app(page, live_server.url)
    search(page, "Eiffel Tower at night")
    first = cards(page).first
    thumb = first.locator("img").get_attribute("src")
    image_url = thumb.removesuffix("/thumb")
    body = json.dumps({"error": {"code": "file_missing", "message": "gone"}})
    page.route(
        f"**{image_url}", lambda route: route.fulfill(status=404, content_type="application/json", body=body)
    )
    first.locator("button.card-button").click()
    expect(page.locator("#viewer-gone")).to_have_text(
        "The file of this photo is no longer in the library; this is its thumbnail."
    )
    expect(page.locator("#viewer-img")).to_have_attribute("src", thumb)
    expect(page.locator("#viewer-original")).to_be_hidden()
    # 11: each fact of the size line stays whole.
    size = page.locator("#viewer-meta .nowrap").last
    expect(size).to_contain_text("×")
    assert size.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"
    screenshot(page, "viewer-file-gone", full_page=False)


# ------------------------------------------------------------------------------ 11: the UI's state


def test_the_box_follows_the_search_and_a_refused_upload_keeps_the_results(
    page: Any, live_server: Any, tmp_path: Path
) -> None:
    open_app(page, live_server.url)
    search(page, "Eiffel Tower at night")
    cards(page).nth(1).locator("button.card-button").click()
    page.get_by_role("button", name="More like this").click()
    expect(cards(page)).to_have_count(11)
    expect(page.locator("#q")).to_have_value("")  # the box no longer claims the old text

    search(page, "Red walls of Moscow Kremlin")
    before = cards(page).locator("img").evaluate_all("imgs => imgs.map(i => i.src)")
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"this is not an image at all" * 10)
    page.set_input_files("#file-search", str(fake))
    expect(page.locator("#error")).to_be_visible()
    expect(cards(page)).to_have_count(12)
    assert cards(page).locator("img").evaluate_all("imgs => imgs.map(i => i.src)") == before
    expect(page.locator("#q")).to_have_value("Red walls of Moscow Kremlin")

    page.set_input_files(
        "#file-search", str(Path(str(live_server.extra["images"])) / "class_0" / "photo_0.jpg")
    )
    expect(page.locator("#query-context")).to_be_visible()
    expect(page.locator("#q")).to_have_value("")


# ------------------------------------------------------------------------------ 12: the API page


def test_the_api_page_renders_from_local_assets(page: Any, live_server: Any) -> None:
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None)
    page.goto(f"{live_server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Wonders", timeout=20_000)
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert outside == [], outside
    screenshot(page, "api-docs")


# ------------------------------------------------------------------------------ the first run, from a fresh clone


def test_first_run_from_a_fresh_clone_as_readme_tells_it(
    page: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """`make run` on an empty library (offline: the page says what to do); photos copied in and
    `make ingest` (README's words) make them searchable without a restart."""
    clone = tmp_path / "wonders"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    (clone / ".venv").symlink_to((REPO / ".venv").resolve())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "CLIP_", "PYTEST"))}
    env.update(
        CLIP_MODEL=str(tiny_model_dir), CLIP_DEVICE="cpu", CLIP_PRECISION="fp32", TORCH_THREADS="1",
        PORT=str(port), HF_HUB_OFFLINE="1", WIKIMEDIA_API_URL=_closed_port_url(), GUNICORN_ACCESS_LOG="",
    )  # fmt: skip
    log = (tmp_path / "make-run.log").open("wb")
    run = subprocess.Popen(
        ["make", "-o", ".venv/.installed", "run"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert run.poll() is None and time.monotonic() < deadline, (tmp_path / "make-run.log").read_text()
            try:
                status = requests.get(f"{url}/api/ingest", timeout=5).json()
                if status["fetch"]["state"] == "failed":
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.5)
        open_app(page, url)
        expect(page.locator("#banner")).to_contain_text(OFFLINE)
        empty = requests.get(f"{url}/api/search", params={"q": "hot air balloons"}, timeout=30).json()
        assert empty["results"] == [] and empty["reason"] == "empty_library"

        for i in range(4):
            write(clone / "images" / "holiday" / f"p{i}.jpg", jpeg_bytes(photo(31_000 + i, (400, 300))))
        ingest = subprocess.run(
            ["make", "-o", ".venv/.installed", "ingest"], cwd=clone, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert ingest.returncode == 0, ingest.stdout + ingest.stderr
        assert "handing the ingest to it" in ingest.stdout
        found = requests.get(f"{url}/api/search", params={"q": "hot air balloons"}, timeout=30).json()
        assert len(found["results"]) == 4 and found.get("reason") is None
        expect(page.locator("#banner")).to_be_hidden(timeout=30_000)  # the page noticed by itself
        page.fill("#q", "hot air balloons")
        page.press("#q", "Enter")
        expect(cards(page)).to_have_count(4)
        screenshot(page, "first-run-from-a-clone")
    finally:
        os.killpg(run.pid, 15)
        run.wait(30)
        log.close()
        shutil.rmtree(clone / "data", ignore_errors=True)
