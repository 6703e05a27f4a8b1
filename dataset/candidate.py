"""A photo found by a source, before it is downloaded, and the stable file name it is stored under."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

MAX_STEM = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


@dataclass(frozen=True)
class Candidate:
    """One downloadable photo with everything its manifest entry needs.

    `key` is the source's stable id ("wikimedia:12345"); `expected_aspect` (width / height) lets the
    verifier catch a body that is some other picture.
    """

    source: str
    key: str
    file_name: str
    download_url: str
    title: str
    author: str
    license: str
    license_url: str | None
    source_url: str
    expected_aspect: float | None = None
    expected_format: str = "JPEG"

    def attribution(self) -> dict[str, str | None]:
        """The manifest entry of this photo (the exact format ingest reads as `attribution`)."""
        return {
            "title": self.title,
            "author": self.author,
            "license": self.license,
            "license_url": self.license_url,
            "source_url": self.source_url,
            "source": self.source,
        }


def slugify(text: str, limit: int = 48) -> str:
    """ASCII letters, digits and single dashes only, at most `limit` characters; '' when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _UNSAFE.sub("-", ascii_text).strip("-").lower()
    return slug[:limit].rstrip("-")


def make_file_name(prefix: str, source_id: str | int, title: str, extension: str) -> str:
    """A stable, filesystem-safe name like `wm-12345-pyramids-of-giza.jpg` (the id makes it unique)."""
    safe_id = slugify(str(source_id), limit=24) or "0"
    slug = slugify(title)
    stem = f"{prefix}-{safe_id}-{slug}" if slug else f"{prefix}-{safe_id}"
    return f"{stem[:MAX_STEM].rstrip('-')}.{extension.lstrip('.').lower()}"


@dataclass(frozen=True)
class Rejected:
    """A search result that is not downloaded, and why (licence, file type, size)."""

    key: str
    reason: str


class SourceError(RuntimeError):
    """A source answered, but not with usable search results (API error, refused key)."""


class Source(Protocol):
    """A searchable photo source: Wikimedia Commons, Pixabay."""

    name: str
    host: str

    def search(self, term: str) -> Iterator[Candidate | Rejected]:
        """Yield the results for `term`, best first, fetching further pages only as they are consumed."""
        ...
