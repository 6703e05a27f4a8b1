"""Pixabay search through its REST API (`https://pixabay.com/api/`), used only when PIXABAY_API_KEY is set.

Every Pixabay image is under the Pixabay Content License. The API asks that images be downloaded to one's
own server rather than hot-linked, which is what this does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from dataset.candidate import Candidate, Rejected, SourceError, make_file_name
from dataset.http import PoliteSession

LICENSE = "Pixabay Content License"
LICENSE_URL = "https://pixabay.com/service/license-summary/"
PAGE_SIZE = 50  # the API accepts 3 to 200
MAX_PAGES = 10
MIN_SOURCE_SIDE = 480
EXTENSIONS = {".jpg": ("jpg", "JPEG"), ".jpeg": ("jpg", "JPEG"), ".png": ("png", "PNG")}


def parse_hit(hit: dict[str, Any]) -> Candidate | Rejected:
    """Turn one entry of the API's `hits` into a Candidate (largeImageURL, else webformatURL)."""
    hit_id = hit.get("id")
    key = f"pixabay:{hit_id}"
    url = hit.get("largeImageURL") or hit.get("webformatURL")
    page_url = hit.get("pageURL")
    if not hit_id or not url or not page_url:
        return Rejected(key, "no download URL")
    suffix = PurePosixPath(urlsplit(str(url)).path).suffix.lower()
    if suffix not in EXTENSIONS:
        return Rejected(key, f"not JPEG/PNG ({suffix or 'unknown type'})")
    extension, image_format = EXTENSIONS[suffix]
    width, height = int(hit.get("imageWidth") or 0), int(hit.get("imageHeight") or 0)
    if width and height and min(width, height) < MIN_SOURCE_SIDE:
        return Rejected(key, f"too small at the source ({width}x{height})")
    tags = str(hit.get("tags") or "").strip()
    return Candidate(
        source="pixabay",
        key=key,
        file_name=make_file_name("px", hit_id, tags, extension),
        download_url=str(url),
        title=tags or f"Pixabay image {hit_id}",
        author=str(hit.get("user") or "unknown"),
        license=LICENSE,
        license_url=LICENSE_URL,
        source_url=str(page_url),
        expected_aspect=width / height if width and height else None,
        expected_format=image_format,
    )


class Pixabay:
    """Search Pixabay photos for a term with an API key."""

    name = "pixabay"

    def __init__(
        self,
        session: PoliteSession,
        api_key: str,
        api_url: str,
        *,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
    ) -> None:
        self.session = session
        self.api_key = api_key
        self.api_url = api_url
        self.host = urlsplit(api_url).netloc or api_url
        self.page_size = page_size
        self.max_pages = max_pages

    def search(self, term: str) -> Iterator[Candidate | Rejected]:
        """Yield the photos for `term`, page by page, until `totalHits` is exhausted."""
        for page in range(1, self.max_pages + 1):
            params: dict[str, str | int] = {
                "key": self.api_key,
                "q": term[:100],
                "image_type": "photo",
                "safesearch": "true",
                "per_page": self.page_size,
                "page": page,
            }
            response = self.session.get(self.api_url, params=params)
            try:
                data = response.json()
            except ValueError as err:
                raise SourceError(f"{self.host} did not answer with JSON") from err
            hits = data.get("hits") if isinstance(data, dict) else None
            if not isinstance(hits, list):
                raise SourceError(f"{self.host} answered without 'hits'")
            for hit in hits:
                if isinstance(hit, dict):
                    yield parse_hit(hit)
            total = int(data.get("totalHits") or 0)
            if not hits or page * self.page_size >= total:
                return
