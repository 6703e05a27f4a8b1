"""Helpers for the headless Chromium tests of the web UI (tests/test_browser.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}
EXAMPLES = [
    "Eiffel Tower at night",
    "Hot air balloons over Cappadocia",
    "Waterfalls and turquoise lakes in national park",
    "Red walls of Moscow Kremlin",
]

# Build a File in the page from base64 and hand it to the UI as a drop (on a selector) or a paste.
_FILE_JS = """
([b64, name, type]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type }));
  return data;
}
"""
DROP_JS = (
    "([b64, name, type, selector]) => {"
    f"  const data = ({_FILE_JS})([b64, name, type]);"
    "  document.body.dispatchEvent(new DragEvent('dragenter', { dataTransfer: data, bubbles: true, cancelable: true }));"
    "  const target = selector ? document.querySelector(selector) : document.body;"
    "  target.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }));"
    "  target.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));"
    "}"
)
PASTE_JS = (
    "([b64, name, type]) => {"
    f"  const data = ({_FILE_JS})([b64, name, type]);"
    "  document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));"
    "}"
)


def file_args(path: Path, mime: str = "image/jpeg") -> list[Any]:
    """Arguments for DROP_JS / PASTE_JS: the file's bytes in base64, its name and type."""
    return [base64.b64encode(path.read_bytes()).decode("ascii"), path.name, mime]


def screenshot(page: Any, name: str, full_page: bool = True) -> Path:
    """Save a screenshot of the page to test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path


class PageProblems:
    """Uncaught exceptions and Content-Security-Policy violations seen by a page."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def attach(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.items.append(f"uncaught: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.items.append(f"csp: {text}")
