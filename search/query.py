"""What a search asks, as one value: what it is about, its filters and which page.

A query is about one thing (a text, an uploaded photo, or a stored photo: "more like this"), and may be
refined by more examples, each a term with a weight and a sign ("… but at night", "less like this").
How the examples combine into one vector is `search/refine.py`; `diverse` asks for MMR
(`search/diversity.py`), which hides near-identical results.
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

MAX_EXAMPLES = 16
MAX_WEIGHT = 10.0


@dataclass(frozen=True)
class Example:
    """One example of a refined query: a term, how much it counts (> 0) and whether to move away from it."""

    term: Term
    weight: float = 1.0
    negative: bool = False

    @property
    def signed_weight(self) -> float:
        """The weight, negative for an example to move away from."""
        return -self.weight if self.negative else self.weight


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
    """One search: what it is about (and its further examples), the filters, the page, and diversity.

    `about` is the first positive example, counted with `weight`; `examples` add terms toward or away
    from which the answer moves."""

    about: Term
    filters: Filters = field(default_factory=Filters)
    page: PageRequest = field(default_factory=PageRequest)
    examples: tuple[Example, ...] = ()
    diverse: bool = False
    weight: float = 1.0

    @property
    def all_examples(self) -> tuple[Example, ...]:
        """Every example, `about` first."""
        return (Example(self.about, self.weight), *self.examples)
