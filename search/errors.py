"""What can go wrong with a request, in the product's own terms (`api/errors.py` maps each to HTTP).

Every error carries a stable machine `code` and a `message` a person reads; neither names a server path.
"""

from __future__ import annotations

from typing import Any


class SearchError(Exception):
    """Base of every error a caller of the search layer can be shown."""

    code = "error"

    def __init__(self, message: str, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class NotReady(SearchError):
    """The model is loading, failed to load, or the store cannot be reached yet."""

    code = "not_ready"


class StoreDown(SearchError):
    """The vector store does not answer right now."""

    code = "store_unavailable"


class ModelMismatch(SearchError):
    """The stored collection was built by another model; searching it would mix spaces."""

    code = "model_mismatch"


class UnknownClass(SearchError):
    """A class filter names no known class."""

    code = "unknown_class"


class UnknownImage(SearchError):
    """No stored image has this id."""

    code = "not_found"


class FileMissing(SearchError):
    """The image is indexed but its file is gone from the library (or cannot be read)."""

    code = "file_missing"


class EmptyQuery(SearchError):
    """A text query with nothing to search for."""

    code = "empty_query"


class UnsupportedUpload(SearchError):
    """An uploaded query photo that cannot be decoded (not an image, a bomb, an unsupported format)."""

    code = "unsupported_image"


class TowerLoading(NotReady):
    """The multilingual text tower asked for by name is still loading."""

    code = "text_encoder_loading"


class TowerOff(SearchError):
    """The multilingual text tower asked for by name is switched off or failed to load."""

    code = "text_encoder_unavailable"


class StoreBroken(SearchError):
    """The store's files are damaged (corrupt meta, a shard folder gone); the message names the cause."""

    code = "store_damaged"


class Busy(SearchError):
    """Too much work of this kind is in flight (memory for decoding uploads); retry in a moment."""

    code = "busy"


class BadQuery(SearchError):
    """A refined query that asks for nothing: no positive example, or examples that cancel out."""

    code = "bad_query"


class TooManyExamples(SearchError):
    """More examples than a query may combine."""

    code = "too_many_examples"
