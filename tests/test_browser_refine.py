"""Refining results in the browser (headless Debian Chromium, the live server): more / less like this,
words, chips, the address and Back; the diversity toggle; the Duplicates view."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser_support import CHROMIUM, screenshot
from tests.test_browser import browser, cards, expect, new_page, open_app, page, search  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def _sources(on: Any) -> list[str]:
    """The photos shown, once the page's search has answered (skeletons have no photo)."""
    expect(on.locator("#results")).to_have_attribute("aria-busy", "false")
    return cards(on).locator("img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")


def test_less_like_this_refines_in_place_and_back_undoes_it(page: Any, live_server: Any) -> None:  # noqa: F811
    open_app(page, live_server.url)
    search(page, "towers")
    before = _sources(page)
    third = cards(page).nth(2)
    third.hover()
    third.get_by_role("button", name=re.compile(r"^Less like ")).click()

    chips = page.locator("#refine-chips > li")
    expect(chips).to_have_count(1)
    expect(chips.first).to_contain_text("− photo")
    expect(page).to_have_url(re.compile(r"less="))
    expect(cards(page)).to_have_count(11)  # the example itself is left out of a 12-photo library
    after = _sources(page)
    assert before[2] not in after and after != before[:11]

    # Words: "towers, not skyscrapers".
    page.fill("#refine-words", "skyscrapers")
    page.click("#refine-not")
    expect(chips).to_have_count(2)
    expect(chips.nth(1)).to_contain_text("− skyscrapers")
    expect(page).to_have_url(re.compile(r"not=skyscrapers"))
    expect(cards(page)).to_have_count(11)
    refined = _sources(page)
    screenshot(page, "refine")

    # The address restores the refined search.
    shared = page.context.new_page()
    open_app(shared, live_server.url, page.url.removeprefix(live_server.url))
    expect(shared.locator("#refine-chips > li")).to_have_count(2)
    expect(cards(shared)).to_have_count(11)
    assert _sources(shared) == refined

    # Back undoes one step at a time.
    page.go_back()
    expect(chips).to_have_count(1)
    expect(cards(page)).to_have_count(11)
    page.go_back()
    expect(chips).to_have_count(0)
    expect(cards(page)).to_have_count(12)
    assert _sources(page) == before

    # Removing a chip is a step too.
    page.go_forward()
    expect(chips).to_have_count(1)
    page.locator("#refine-chips button").first.click()
    expect(chips).to_have_count(0)
    assert "less=" not in page.url


def test_more_like_this_and_the_diversity_toggle(page: Any, live_server: Any) -> None:  # noqa: F811
    open_app(page, live_server.url, "/?q=lake")
    expect(cards(page)).to_have_count(12)
    first = cards(page).first
    first.hover()
    first.get_by_role("button", name=re.compile(r"^More like ")).click()
    expect(page.locator("#refine-chips > li")).to_contain_text(["+ photo"])
    expect(page).to_have_url(re.compile(r"more="))
    page.check("#refine-diverse")
    expect(page).to_have_url(re.compile(r"diverse=1"))
    expect(cards(page)).to_have_count(11)
    page.go_back()
    expect(page.locator("#refine-diverse")).not_to_be_checked()


def test_the_duplicates_view(page: Any, live_server: Any) -> None:  # noqa: F811
    open_app(page, live_server.url)
    page.get_by_role("link", name="Duplicates").click()
    page.wait_for_selector("html[data-ready='true']")
    expect(page.locator("#duplicates-view")).to_be_visible()
    expect(page.locator("#duplicates-status")).to_have_text("No duplicates in the library.")
    expect(page.locator("#q")).to_be_hidden()
    screenshot(page, "duplicates-empty")
