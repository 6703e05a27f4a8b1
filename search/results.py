"""The typed answers of the search layer, and how a stored point becomes one.

`api/schemas.py` serialises these objects by attribute; their field names are the API's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from core.classes import LandmarkClass
from core.payload import ImagePayload, public_path
from core.store import Hit

if TYPE_CHECKING:
    from search.text_towers import Encoded


@dataclass(frozen=True)
class ClassLabel:
    """A class as answers show it: id and both names."""

    id: str
    name: str
    name_ru: str

    @classmethod
    def of(cls, landmark: LandmarkClass | None, class_id: str | None) -> ClassLabel:
        """The label of a known class, or one that repeats the id of a class no longer in the file."""
        if landmark is not None:
            return cls(landmark.id, landmark.name, landmark.name_ru)
        text = class_id or "unknown"
        return cls(text, text, text)


@dataclass(frozen=True)
class ScoredLabel:
    """A class with the confidence given to it."""

    id: str
    name: str
    name_ru: str
    confidence: float | None


# Looks a class up by id (None when it is not a known class).
ClassLookup = Callable[[str | None], LandmarkClass | None]


@dataclass(frozen=True)
class Result:
    """One photo in a page of results."""

    id: str
    score: float
    label: ClassLabel
    confidence: float | None
    thumb_url: str
    image_url: str
    width: int | None
    height: int | None
    attribution: dict[str, Any] | None
    # What a person calls the photo: its recorded title, else its file name.
    title: str = ""


# Page.reason of a page that is empty because the library is: no `images` collection yet (nothing
# ingested, or it was deleted). The UI says how to fill the library instead of "no results".
EMPTY_LIBRARY = "empty_library"


@dataclass(frozen=True)
class Page:
    """A page of results; `next_offset` is None on the last page.

    A text search names the tower that encoded the text (`text_encoder`: scores of different towers are
    not comparable), whether the text was cut to the tower's limit, and, when `auto` meant the
    multilingual tower but CLIP answered, why (`text_encoder_fallback`: loading, off, failed).
    `reason` says why a page is empty when the query is not the cause (EMPTY_LIBRARY), else None."""

    results: list[Result]
    k: int
    offset: int
    next_offset: int | None
    took_ms: float
    text_encoder: str | None = None
    truncated: bool | None = None
    text_encoder_fallback: str | None = None
    # Why a page is empty when the query is not to blame: "empty_library" (nothing is indexed yet).
    reason: str | None = None


@dataclass(frozen=True)
class Embedding:
    """One input of /api/embed as a unit vector, with the tower and model that made it."""

    kind: str  # "text" | "image"
    vector: list[float]
    tower: str  # "clip" | "multilingual" for a text, "clip" for the image
    model: str
    text: str | None = None
    truncated: bool | None = None
    text_encoder_fallback: str | None = None


@dataclass(frozen=True)
class EmbedAnswer:
    """The vectors of /api/embed (texts in their order, then the image), all in one space."""

    embeddings: list[Embedding]
    dim: int
    took_ms: float


@dataclass(frozen=True)
class ImageRecord:
    """Everything known about one stored photo."""

    id: str
    label: ClassLabel
    confidence: float | None
    top3: list[ScoredLabel]
    thumb_url: str
    image_url: str
    width: int | None
    height: int | None
    attribution: dict[str, Any] | None
    path: str
    sha256: str | None
    bytes: int | None
    format: str | None
    ingested_at: str | None


@dataclass(frozen=True)
class ClassifyAnswer:
    """Which class a photo shows: the best one (or `other`), the best class's confidence and the top 3;
    `reason` says why the answer is `other` ("distractor" or "low_confidence"), None otherwise."""

    label: ClassLabel
    confidence: float
    top3: list[ScoredLabel]
    took_ms: float
    reason: str | None = None


@dataclass(frozen=True)
class ClassInfo:
    """A class with its prompts and how many photos carry it."""

    id: str
    name: str
    name_ru: str
    prompts: list[str]
    count: int


@dataclass(frozen=True)
class Stats:
    """The state of the collection and the service."""

    points: int
    indexed_vectors: int
    model: str
    dim: int
    device: str
    precision: str
    store: str
    classes: dict[str, int]
    crosscheck: dict[str, Any] | None
    query_cache: dict[str, int]
    limits: dict[str, float]


def thumb_url(point_id: str) -> str:
    """Where a client fetches a photo's thumbnail."""
    return f"/images/{point_id}/thumb"


def image_url(point_id: str) -> str:
    """Where a client fetches the photo itself."""
    return f"/images/{point_id}"


def result(hit: Hit, lookup: ClassLookup) -> Result:
    """A search hit as a Result."""
    payload = ImagePayload.from_stored(hit.payload)
    return Result(
        id=hit.id,
        score=round(hit.score, 6),
        label=ClassLabel.of(lookup(payload.label), payload.label),
        confidence=payload.confidence,
        thumb_url=thumb_url(hit.id),
        image_url=image_url(hit.id),
        width=payload.width,
        height=payload.height,
        attribution=payload.attribution,
        title=photo_title(payload),
    )


def photo_title(payload: ImagePayload) -> str:
    """The photo's title from its attribution, else its file name without the folder."""
    title = (payload.attribution or {}).get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    return PurePosixPath(payload.path).name


def page(
    hits: Sequence[Hit],
    k: int,
    offset: int,
    took_ms: float,
    lookup: ClassLookup,
    encoded: Encoded | None = None,
) -> Page:
    """The page for hits fetched with one more than `k`, which tells whether a next page exists;
    `encoded`: the text query's vector and what made it."""
    return Page(
        results=[result(hit, lookup) for hit in hits[:k]],
        k=k,
        offset=offset,
        next_offset=offset + k if len(hits) > k else None,
        took_ms=took_ms,
        text_encoder=encoded.tower if encoded else None,
        truncated=encoded.truncated if encoded else None,
        text_encoder_fallback=encoded.fallback if encoded else None,
    )


def text_embedding(text: str, encoded: Encoded) -> Embedding:
    """A text's vector as /api/embed answers it."""
    return Embedding(
        kind="text",
        vector=[float(x) for x in encoded.vector],
        tower=encoded.tower,
        model=encoded.model,
        text=text,
        truncated=encoded.truncated,
        text_encoder_fallback=encoded.fallback,
    )


def empty_library_page(k: int, offset: int, took_ms: float) -> Page:
    """The answer to any search while the library holds no collection yet."""
    return Page(results=[], k=k, offset=offset, next_offset=None, took_ms=took_ms, reason=EMPTY_LIBRARY)


def image_record(point_id: str, stored: dict[str, Any], lookup: ClassLookup) -> ImageRecord:
    """A stored point as an ImageRecord."""
    payload = ImagePayload.from_stored(stored)
    return ImageRecord(
        id=point_id,
        label=ClassLabel.of(lookup(payload.label), payload.label),
        confidence=payload.confidence,
        top3=[scored(lookup(s.id), s.id, s.confidence) for s in payload.top3],
        thumb_url=thumb_url(point_id),
        image_url=image_url(point_id),
        width=payload.width,
        height=payload.height,
        attribution=payload.attribution,
        path=public_path(payload.path),
        sha256=payload.sha256,
        bytes=payload.bytes,
        format=payload.format,
        ingested_at=payload.ingested_at,
    )


def scored(landmark: LandmarkClass | None, class_id: str | None, confidence: float | None) -> ScoredLabel:
    """A class label with a confidence."""
    label = ClassLabel.of(landmark, class_id)
    return ScoredLabel(label.id, label.name, label.name_ru, confidence)
