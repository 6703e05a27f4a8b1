"""Wikimedia Commons search through the MediaWiki API (`api.php`), keeping freely licensed JPEG/PNG files.

One request per page of results: `generator=search` over the File: namespace, with `prop=imageinfo` giving
the thumbnail URL, sizes, MIME type and the licence/author metadata (`extmetadata`) of each file.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from dataset.candidate import Candidate, Rejected, SourceError, make_file_name
from dataset.http import PoliteSession
from dataset.licences import classify_licence

# Wikimedia serves only standard thumbnail widths (20 ... 960, 1280, 1920, 3840); others are refused.
THUMB_WIDTH = 1280
PAGE_SIZE = 50
MAX_PAGES = 20
MIN_SOURCE_SIDE = 480
MIME_EXTENSIONS = {"image/jpeg": ("jpg", "JPEG"), "image/png": ("png", "PNG")}
METADATA_FIELDS = "LicenseShortName|License|LicenseUrl|Artist|ObjectName|NonFree"


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def strip_html(text: str | None, limit: int = 300) -> str:
    """Plain text of an HTML fragment (extmetadata values are HTML), whitespace collapsed, length bounded."""
    if not text:
        return ""
    extractor = _TextExtractor()
    extractor.feed(str(text))
    extractor.close()
    plain = re.sub(r"\s+", " ", html.unescape("".join(extractor.parts))).strip()
    return plain if len(plain) <= limit else plain[: limit - 1].rstrip() + "…"


def _meta(extmetadata: dict[str, Any], field: str) -> str:
    entry = extmetadata.get(field)
    value = entry.get("value") if isinstance(entry, dict) else None
    return strip_html(value) if isinstance(value, str) else ""


def _title_of(page_title: str) -> str:
    name = page_title.split(":", 1)[1] if page_title.startswith("File:") else page_title
    return PurePosixPath(name).stem.replace("_", " ").strip() or name


def parse_page(page: dict[str, Any]) -> Candidate | Rejected:
    """Turn one `query.pages[]` entry into a Candidate, or a Rejected saying why it is not kept."""
    page_id = page.get("pageid")
    page_title = str(page.get("title", ""))
    key = f"wikimedia:{page_id or page_title}"
    infos = page.get("imageinfo")
    if not page_id or not isinstance(infos, list) or not infos:
        return Rejected(key, "no file information")
    info = infos[0]
    mime = str(info.get("mime", ""))
    if mime not in MIME_EXTENSIONS:
        return Rejected(key, f"not JPEG/PNG ({mime or 'unknown type'})")
    extension, image_format = MIME_EXTENSIONS[mime]
    metadata = info.get("extmetadata") or {}
    if _meta(metadata, "NonFree").lower() in {"true", "1", "yes"}:
        return Rejected(key, "non-free file")
    short_name = _meta(metadata, "LicenseShortName")
    verdict = classify_licence(short_name, _meta(metadata, "License"))
    if not verdict.free:
        return Rejected(key, verdict.reason)
    width, height = int(info.get("width") or 0), int(info.get("height") or 0)
    if min(width, height) < MIN_SOURCE_SIDE:
        return Rejected(key, f"too small at the source ({width}x{height})")
    url = info.get("thumburl") or info.get("url")
    source_url = info.get("descriptionurl")
    if not url or not source_url:
        return Rejected(key, "no download URL")
    thumb_w, thumb_h = int(info.get("thumbwidth") or width), int(info.get("thumbheight") or height)
    title = _meta(metadata, "ObjectName") or _title_of(page_title)
    return Candidate(
        source="wikimedia",
        key=key,
        file_name=make_file_name("wm", page_id, _title_of(page_title), extension),
        download_url=str(url),
        title=title,
        author=_meta(metadata, "Artist") or "unknown",
        license=short_name or str(verdict.family),
        license_url=_meta(metadata, "LicenseUrl") or None,
        source_url=str(source_url),
        expected_aspect=thumb_w / thumb_h if thumb_w and thumb_h else None,
        expected_format=image_format,
    )


class WikimediaCommons:
    """Search Wikimedia Commons for photos of a term; only free licences come out as Candidates."""

    name = "wikimedia"

    def __init__(
        self,
        session: PoliteSession,
        api_url: str,
        *,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
        thumb_width: int = THUMB_WIDTH,
    ) -> None:
        self.session = session
        self.api_url = api_url
        self.host = urlsplit(api_url).netloc or api_url
        self.page_size = page_size
        self.max_pages = max_pages
        self.thumb_width = thumb_width

    def _params(self, term: str) -> dict[str, str | int]:
        return {
            "action": "query",
            "format": "json",
            "formatversion": 2,
            "generator": "search",
            "gsrsearch": f"{term} filetype:bitmap",
            "gsrnamespace": 6,
            "gsrlimit": self.page_size,
            "prop": "imageinfo",
            "iiprop": "url|size|mime|extmetadata",
            "iiurlwidth": self.thumb_width,
            "iiextmetadatafilter": METADATA_FIELDS,
            "iiextmetadatalanguage": "en",
        }

    def search(self, term: str) -> Iterator[Candidate | Rejected]:
        """Yield the results for `term` in search rank order, page by page (MediaWiki `continue`)."""
        params = self._params(term)
        for _ in range(self.max_pages):
            response = self.session.get(self.api_url, params=params)
            try:
                data = response.json()
            except ValueError as err:
                raise SourceError(f"{self.host} did not answer with JSON") from err
            if not isinstance(data, dict):
                raise SourceError(f"{self.host} answered with unexpected JSON")
            if "error" in data:
                error = data["error"] if isinstance(data["error"], dict) else {}
                raise SourceError(f"{self.host} API error: {error.get('code')}: {error.get('info')}")
            pages = (data.get("query") or {}).get("pages") or []
            if isinstance(pages, dict):  # formatversion=1 shape
                pages = list(pages.values())
            for page in sorted(pages, key=lambda p: p.get("index", 0)):
                yield parse_page(page)
            cont = data.get("continue")
            if not isinstance(cont, dict):
                return
            params = {**params, **cont}
