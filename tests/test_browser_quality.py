"""The Quality view in headless Chromium, against the live server: no report yet, then the latest report
written by `make eval`'s report writer, with its tables and its charts (served by run and name), in both
languages; and the classify panel's "None of the classes" answer."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eval.classification import classification_section
from eval.prompts import PromptResult, prompts_section
from eval.report import eval_root, write_report
from tests.browser_support import CHROMIUM, DESKTOP, LAUNCH_ARGS, PageProblems, screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh context; fails on uncaught errors and CSP violations."""
    problems = PageProblems()
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = context.new_page()
    problems.attach(page)
    yield page
    context.close()
    assert not problems.items, problems.items


def sample_report() -> dict[str, Any]:
    """A report with the sections the view shows, built by the eval's own section builders."""
    truth = ["pyramids", "pyramids", "moscow_kremlin", "other", "other"]
    answers = ["pyramids", "other", "moscow_kremlin", "other", "pyramids"]
    ranked = [[a, "pyramids", "moscow_kremlin", "ancient_ruins"] for a in answers]
    classification = classification_section(
        truth,
        answers,
        ranked,
        [0.9, 0.2, 0.7, 0.1, 0.4],
        [True, True, True, False, False],
        ["pyramids", "moscow_kremlin", "other"],
    )
    rows = [PromptResult("pyramids", "a photo of the pyramids", 0.5, 0.25, 1.0, 0.5)]
    classification["prompts"] = prompts_section(0.5, rows)
    classification["threshold"] = 0.3
    medium = {"map": 0.61, "mp@1": 0.8, "mp@5": 0.7, "mp@10": 0.65, "queries": 70}
    return {
        "model": {"name": "tiny", "precision": "fp32"},
        "classification": classification,
        "threshold": {"fitted": 0.3, "coverage": 0.6, "accuracy_covered": 0.6667},
        "text_to_image": {
            "en": {"queries": 4, "r@1": 0.5, "r@5": 0.75, "r@10": 1.0, "map": 0.625},
            "ru": {"queries": 4, "r@1": 0.25, "r@5": 0.5, "r@10": 0.5, "map": 0.3},
            "ru_en": {"pairs": 4, "ru_r@10": 0.5, "en_r@10": 1.0, "ratio_r@10": 0.5},
        },
        "image_to_image": {"queries": 3, "map@100": 0.42, "p@1": 0.66, "p@5": 0.4, "p@10": 0.3},
        "revisited": {"roxford5k": {"easy": medium, "medium": medium, "hard": {**medium, "map": 0.33}}},
        "precision": {"fp32": {"top1_accuracy": 0.6}, "int8": {"top1_accuracy": 0.55}},
    }


def open_quality(page: Any, url: str) -> None:
    page.goto(url + "/")
    page.wait_for_selector("html[data-ready='true']")
    page.get_by_role("button", name="Quality").click()
    expect(page.locator("#quality-panel")).to_be_visible()


def test_quality_view_before_and_after_an_eval(page: Any, live_server: Any) -> None:
    root = eval_root(Path(str(live_server.extra["data"])))
    shutil.rmtree(root, ignore_errors=True)
    open_quality(page, live_server.url)
    expect(page.locator("#quality-none")).to_contain_text("make eval")
    page.get_by_role("button", name="Quality").click()
    expect(page.locator("#quality-panel")).to_be_hidden()

    run = write_report(root, sample_report())
    try:
        report = json.loads((run / "report.json").read_text(encoding="utf-8"))
        open_quality(page, live_server.url)
        panel = page.locator("#quality-panel")
        expect(panel.locator("caption").first).to_have_text("Classification (5 labelled photos)")
        top1 = panel.locator("tr", has_text="Top-1 accuracy").locator("td")
        expect(top1).to_have_text(f"{report['classification']['top1_accuracy']:.3f}")
        expect(panel.locator("tr", has_text="Russian / English").locator("td").nth(3)).to_have_text("0.500")
        expect(panel.locator("caption", has_text="Revisited roxford5k")).to_be_visible()
        expect(panel.locator("tr", has_text="Hard").locator("td").first).to_have_text("0.330")
        images = panel.locator(".quality-chart img")
        expect(images).to_have_count(3)
        for i in range(3):
            image = images.nth(i)
            assert (
                image.get_attribute("src") == f"/api/eval/runs/{run.name}/charts/{list(report['charts'])[i]}"
            )
            image.scroll_into_view_if_needed()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        screenshot(page, "quality")
        page.locator("[data-lang='ru']").click()
        expect(panel.locator("caption").first).to_have_text("Классификация (5 размеченных фото)")
        expect(page.get_by_role("button", name="Качество")).to_be_visible()
    finally:
        shutil.rmtree(run, ignore_errors=True)


def test_classify_panel_says_none_of_the_classes_with_the_top_3(
    page: Any, live_server: Any, tmp_path: Path
) -> None:
    """The server's answer for a photo of none of the classes (label `other`, the best real classes
    still listed); the answer is pinned so the test does not depend on the random model's scores."""
    answer = {
        "label": {"id": "other", "name": "None of these", "name_ru": "Ничего из этого"},
        "confidence": 0.18,
        "reason": "low_confidence",
        "took_ms": 5.0,
        "top3": [
            {"id": "pyramids", "name": "Ancient pyramids", "name_ru": "Древние пирамиды", "confidence": 0.18},
            {
                "id": "moscow_kremlin",
                "name": "Moscow Kremlin",
                "name_ru": "Московский Кремль",
                "confidence": 0.15,
            },
            {"id": "ancient_ruins", "name": "Ancient ruins", "name_ru": "Древние руины", "confidence": 0.12},
        ],
    }
    page.route(
        "**/api/classify",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(answer)),
    )
    page.goto(live_server.url + "/")
    page.wait_for_selector("html[data-ready='true']")
    images = Path(str(live_server.extra["images"]))
    page.set_input_files("#file-classify", str(images / "class_0" / "photo_0.jpg"))
    expect(page.locator("#classify-label")).to_have_text("None of the classes")
    expect(page.locator("#classify-confidence")).to_have_text(
        "Closest class: Ancient pyramids, 18% confidence"
    )
    expect(page.locator("#classify-bars .bar")).to_have_count(3)
    page.locator("[data-lang='ru']").click()
    expect(page.locator("#classify-label")).to_have_text("Ни один из классов")
