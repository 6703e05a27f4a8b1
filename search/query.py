"""What a search asks, as one value: what it is about, its filters and which page.

Today a query is about one thing: a text, an uploaded photo, or a stored photo ("more like this"). The
value is shaped so that refinement (several weighted positive and negative terms) and a choice of text
tower become new fields and new term kinds here, not new routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from search.text_router import TextEncoder

DEFAULT_K = 12
MAX_K = 100
MAX_OFFSET = 10_000


@dataclass(frozen=True)
class TextTerm:
    """A description to search for, and which text tower encodes it (search/text_router.py: `auto`
    sends a text with a non-Latin letter to the multilingual tower, the rest to CLIP)."""

    text: str
    text_encoder: TextEncoder = "auto"


@dataclass(frozen=True)
class UploadTerm:
    """An uploaded photo (its bytes, decoded by the search layer; never stored)."""

    data: bytes


@dataclass(frozen=True)
class StoredTerm:
    """A photo of the library, by id: its stored vector is the query and it is left out of the answer."""

    point_id: str


Term = TextTerm | UploadTerm | StoredTerm


@dataclass(frozen=True)
class Filters:
    """Which results may be returned: one class, and a lowest cosine similarity."""

    label: str | None = None
    min_score: float | None = None


@dataclass(frozen=True)
class PageRequest:
    """Which page: `k` results after skipping `offset`."""

    k: int = DEFAULT_K
    offset: int = 0


@dataclass(frozen=True)
class Query:
    """One search: what it is about, the filters, the page."""

    about: Term
    filters: Filters = field(default_factory=Filters)
    page: PageRequest = field(default_factory=PageRequest)
