"""Request and response schemas: they drive validation and the generated OpenAPI document."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from search.query import DEFAULT_K, MAX_EXAMPLES, MAX_K, MAX_OFFSET, MAX_WEIGHT, Filters, PageRequest


class WholeNumber(ma.fields.Integer):
    """An integer that refuses fractions: JSON `2.5` is a 400, not silently 2 (query strings parse as usual)."""

    def _validated(self, value: Any) -> int:
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Flag(ma.fields.Boolean):
    """A boolean: JSON true/false, or "true"/"false"/"1"/"0" in a query string; JSON 0 or 1 is a 400."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool | str):
            raise self.make_error("invalid", input=value)
        return bool(super()._deserialize(value, attr, data, **kwargs))


class StrictSchema(ma.Schema):
    """Unknown parameters are refused, so a typo is a 400 instead of being silently ignored."""

    class Meta:
        unknown = ma.RAISE


class PageArgs(StrictSchema):
    """k, offset, class filter and minimum score, shared by every search."""

    k = WholeNumber(
        load_default=DEFAULT_K,
        validate=validate.Range(1, MAX_K),
        metadata={"description": "results per page"},
    )
    offset = WholeNumber(
        load_default=0, validate=validate.Range(0, MAX_OFFSET), metadata={"description": "results to skip"}
    )
    class_ = ma.fields.String(
        data_key="class",
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "only images of this class id"},
    )
    min_score = ma.fields.Float(
        load_default=None,
        allow_nan=False,
        validate=validate.Range(-1.0, 1.0),
        metadata={"description": "drop results below this cosine similarity"},
    )
    diverse = Flag(load_default=False, metadata={"description": "hide near-identical results (MMR)"})


class TextSearchArgs(PageArgs):
    """A text query; any Unicode; longer than CLIP's 77 tokens is truncated."""

    q = ma.fields.String(required=True, validate=validate.Length(min=1, max=20_000))


class SimilarArgs(StrictSchema):
    """More like this: k, offset and class."""

    k = PageArgs._declared_fields["k"]
    offset = PageArgs._declared_fields["offset"]
    class_ = PageArgs._declared_fields["class_"]
    diverse = PageArgs._declared_fields["diverse"]


def filters(args: dict[str, Any]) -> Filters:
    """The filters of parsed PageArgs / SimilarArgs."""
    return Filters(label=args.get("class_") or None, min_score=args.get("min_score"))


def page_request(args: dict[str, Any]) -> PageRequest:
    """The page of parsed PageArgs / SimilarArgs."""
    return PageRequest(k=args["k"], offset=args["offset"])


class UploadFiles(ma.Schema):
    """A multipart upload with one file field `image`."""

    class Meta:
        unknown = ma.EXCLUDE

    image = ma.fields.Raw(
        required=True, metadata={"type": "string", "format": "binary", "description": "the photo"}
    )


class Label(ma.Schema):
    """A class: id and names."""

    id = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    name_ru = ma.fields.String(required=True)


class ScoredLabel(Label):
    """A class with a confidence."""

    confidence = ma.fields.Float(allow_none=True)


class Attribution(ma.Schema):
    """Who made a photo and under which licence."""

    title = ma.fields.String()
    author = ma.fields.String()
    license = ma.fields.String()
    license_url = ma.fields.String()
    source_url = ma.fields.String()
    source = ma.fields.String()


class Result(ma.Schema):
    """One search answer."""

    id = ma.fields.String(required=True)
    score = ma.fields.Float(required=True)
    label = ma.fields.Nested(Label, required=True)
    confidence = ma.fields.Float(allow_none=True)
    thumb_url = ma.fields.String(required=True)
    image_url = ma.fields.String(required=True)
    width = ma.fields.Integer(allow_none=True)
    height = ma.fields.Integer(allow_none=True)
    attribution = ma.fields.Nested(Attribution, allow_none=True)


class SearchResponse(ma.Schema):
    """A page of results."""

    results = ma.fields.List(ma.fields.Nested(Result), required=True)
    k = ma.fields.Integer(required=True)
    offset = ma.fields.Integer(required=True)
    next_offset = ma.fields.Integer(allow_none=True, metadata={"description": "null when no more pages"})
    took_ms = ma.fields.Float(required=True)


class ImageMeta(ma.Schema):
    """An image's stored metadata."""

    id = ma.fields.String(required=True)
    label = ma.fields.Nested(Label, required=True)
    confidence = ma.fields.Float(allow_none=True)
    top3 = ma.fields.List(ma.fields.Nested(ScoredLabel))
    thumb_url = ma.fields.String(required=True)
    image_url = ma.fields.String(required=True)
    width = ma.fields.Integer(allow_none=True)
    height = ma.fields.Integer(allow_none=True)
    attribution = ma.fields.Nested(Attribution, allow_none=True)
    path = ma.fields.String()
    sha256 = ma.fields.String()
    bytes = ma.fields.Integer(allow_none=True)
    format = ma.fields.String(allow_none=True)
    ingested_at = ma.fields.String(allow_none=True)


class ClassifyResponse(ma.Schema):
    """The class of a photo."""

    label = ma.fields.Nested(Label, required=True)
    confidence = ma.fields.Float(required=True)
    top3 = ma.fields.List(ma.fields.Nested(ScoredLabel), required=True)
    took_ms = ma.fields.Float(required=True)


class ClassInfo(Label):
    """A class with its prompts and how many images carry it."""

    prompts = ma.fields.List(ma.fields.String())
    count = ma.fields.Integer()


class ClassesResponse(ma.Schema):
    """Every class."""

    classes = ma.fields.List(ma.fields.Nested(ClassInfo), required=True)


class HealthResponse(ma.Schema):
    """Liveness."""

    status = ma.fields.String(required=True)


class ReadyResponse(ma.Schema):
    """Readiness, once the model and the store answer (else a 503 error)."""

    ready = ma.fields.Boolean(required=True)
    model = ma.fields.String()
    device = ma.fields.String()


class StatsResponse(ma.Schema):
    """Point count, model, embedding size, counts per class and the last FAISS cross-check."""

    points = ma.fields.Integer(required=True)
    indexed_vectors = ma.fields.Integer()
    model = ma.fields.String(required=True)
    dim = ma.fields.Integer(required=True)
    device = ma.fields.String()
    precision = ma.fields.String()
    store = ma.fields.String()
    classes = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), required=True)
    crosscheck = ma.fields.Dict(allow_none=True, metadata={"description": "null before the first run"})
    query_cache = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    limits = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Float(),
        metadata={"description": "max_upload_mb, max_k and default_k, so clients need not repeat them"},
    )


class ErrorBody(ma.Schema):
    """What went wrong."""

    code = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    details = ma.fields.Raw()


class ErrorResponse(ma.Schema):
    """Every error of the API."""

    error = ma.fields.Nested(ErrorBody, required=True)


# -- search with examples (POST /api/query) ------------------------------------------------------

KINDS = ("text", "id", "upload")


class ExampleArgs(StrictSchema):
    """One example: exactly one of a text, a stored photo's id, or the name of an uploaded file field."""

    text = ma.fields.String(validate=validate.Length(min=1, max=20_000), metadata={"description": "words"})
    id = ma.fields.String(validate=validate.Length(min=1, max=64), metadata={"description": "a stored photo"})
    upload = ma.fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "the multipart file field holding an uploaded photo"},
    )
    weight = ma.fields.Float(
        load_default=1.0,
        allow_nan=False,
        validate=validate.Range(0.0, MAX_WEIGHT, min_inclusive=False),
        metadata={"description": "how much the example counts (default 1)"},
    )

    @ma.validates_schema
    def _one_kind(self, data: dict[str, Any], **_: Any) -> None:
        given = [kind for kind in KINDS if kind in data]
        if len(given) != 1:
            raise ma.ValidationError("Give exactly one of 'text', 'id' or 'upload'.")


class QueryArgs(PageArgs):
    """Search with examples: move toward the positive ones and away from the negative ones."""

    positive = ma.fields.List(
        ma.fields.Nested(ExampleArgs),
        required=True,
        validate=validate.Length(min=1, max=MAX_EXAMPLES),
        metadata={"description": "what to find: texts, stored photos, uploaded photos"},
    )
    negative = ma.fields.List(
        ma.fields.Nested(ExampleArgs),
        load_default=list,
        validate=validate.Length(max=MAX_EXAMPLES),
        metadata={"description": "what to move away from"},
    )


class QueryForm(ma.Schema):
    """The multipart form of a query with uploaded photos: the JSON query plus one file per upload."""

    query = ma.fields.String(required=True, metadata={"description": "the JSON body of a QueryArgs"})
    image = ma.fields.Raw(metadata={"type": "string", "format": "binary", "description": "a photo"})


# -- near-duplicates (GET /api/duplicates) -------------------------------------------------------------


class DuplicatesArgs(StrictSchema):
    """Which page of groups."""

    k = WholeNumber(
        load_default=10, validate=validate.Range(1, 50), metadata={"description": "groups per page"}
    )
    offset = PageArgs._declared_fields["offset"]


class NotDuplicateArgs(StrictSchema):
    """The photo of the group that is not a duplicate of its representative."""

    id = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))


class DuplicateFile(ma.Schema):
    """One file of a group."""

    id = ma.fields.String(required=True)
    path = ma.fields.String(required=True)
    bytes = ma.fields.Integer(allow_none=True)
    width = ma.fields.Integer(allow_none=True)
    height = ma.fields.Integer(allow_none=True)
    thumb_url = ma.fields.String(required=True)
    image_url = ma.fields.String(required=True)
    representative = ma.fields.Boolean(required=True)
    identical = ma.fields.Boolean(
        required=True, metadata={"description": "byte-identical with the representative's file"}
    )
    distance = ma.fields.Integer(
        allow_none=True, metadata={"description": "perceptual-hash bits from the representative (of 256)"}
    )
    largest = ma.fields.Boolean(required=True)


class DuplicateGroup(ma.Schema):
    """The files of one photo, the representative first."""

    id = ma.fields.String(required=True, metadata={"description": "the representative's id"})
    kind = ma.fields.String(required=True, metadata={"description": "identical (same bytes) or near"})
    files = ma.fields.List(ma.fields.Nested(DuplicateFile), required=True)


class DuplicatesResponse(ma.Schema):
    """A page of groups of duplicates."""

    groups = ma.fields.List(ma.fields.Nested(DuplicateGroup), required=True)
    total = ma.fields.Integer(required=True)
    k = ma.fields.Integer(required=True)
    offset = ma.fields.Integer(required=True)
    next_offset = ma.fields.Integer(allow_none=True, metadata={"description": "null when no more pages"})
