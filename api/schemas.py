"""Request and response schemas: they drive validation and the generated OpenAPI document."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from search.query import DEFAULT_K, MAX_EXAMPLES, MAX_K, MAX_OFFSET, MAX_WEIGHT, Filters, PageRequest
from search.text_router import TEXT_ENCODERS


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


TEXT_ENCODER = ma.fields.String(
    load_default="auto",
    validate=validate.OneOf(TEXT_ENCODERS),
    metadata={
        "description": "the text tower: auto (a text with a non-Latin letter goes to the multilingual "
        "tower, the rest to CLIP), clip, or multilingual"
    },
)


class TextSearchArgs(PageArgs):
    """A text query; any Unicode; longer than the tower's 77 tokens is truncated (and said so)."""

    q = ma.fields.String(required=True, validate=validate.Length(min=1, max=20_000))
    text_encoder = TEXT_ENCODER


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


MAX_EMBED_TEXTS = 64


class EmbedArgs(StrictSchema):
    """Texts to embed (a JSON body, or repeated form fields `texts` beside a multipart `image`)."""

    texts = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=20_000)),
        load_default=list,
        validate=validate.Length(max=MAX_EMBED_TEXTS),
        metadata={"description": f"at most {MAX_EMBED_TEXTS} texts"},
    )
    text_encoder = TEXT_ENCODER


class EmbedFiles(ma.Schema):
    """An optional photo to embed, the multipart file field `image`."""

    class Meta:
        unknown = ma.EXCLUDE

    image = ma.fields.Raw(metadata={"type": "string", "format": "binary", "description": "a photo"})


class UploadFiles(ma.Schema):
    """A multipart upload with one file field `image`."""

    class Meta:
        unknown = ma.EXCLUDE

    image = ma.fields.Raw(
        required=True,
        metadata={"type": "string", "format": "binary", "description": "the photo"},
        error_messages={
            "required": "Send the photo as the multipart/form-data file field 'image' "
            "(e.g. curl -F image=@photo.jpg)."
        },
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
    title = ma.fields.String(metadata={"description": "the photo's recorded title, else its file name"})


class SearchResponse(ma.Schema):
    """A page of results."""

    results = ma.fields.List(ma.fields.Nested(Result), required=True)
    k = ma.fields.Integer(required=True)
    offset = ma.fields.Integer(required=True)
    next_offset = ma.fields.Integer(allow_none=True, metadata={"description": "null when no more pages"})
    took_ms = ma.fields.Float(required=True)
    text_encoder = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "text search: the tower that encoded the text (clip, multilingual); scores "
            "of different towers are not comparable. null for image searches"
        },
    )
    truncated = ma.fields.Boolean(
        allow_none=True, metadata={"description": "text search: the text was cut to the tower's 77 tokens"}
    )
    text_encoder_fallback = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "why CLIP answered a text auto meant for the multilingual tower (loading, "
            "off, failed); null otherwise"
        },
    )
    reason = ma.fields.String(
        allow_none=True,
        metadata={"description": "why the page is empty when the query is not to blame: empty_library"},
    )


class Embedding(ma.Schema):
    """One input as a unit vector, with the tower and model that made it."""

    kind = ma.fields.String(required=True, metadata={"description": "text or image"})
    vector = ma.fields.List(ma.fields.Float(), required=True)
    tower = ma.fields.String(required=True, metadata={"description": "clip or multilingual"})
    model = ma.fields.String(required=True)
    text = ma.fields.String(allow_none=True)
    truncated = ma.fields.Boolean(allow_none=True)
    text_encoder_fallback = ma.fields.String(allow_none=True)


class EmbedResponse(ma.Schema):
    """Unit vectors in the library's space: the texts in their order, then the image."""

    embeddings = ma.fields.List(ma.fields.Nested(Embedding), required=True)
    dim = ma.fields.Integer(required=True)
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
    reason = ma.fields.String(
        allow_none=True,
        metadata={"description": "why the label is `other`: distractor or low_confidence; null otherwise"},
    )


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


class TowerState(ma.Schema):
    """Where a text tower stands."""

    state = ma.fields.String(required=True, metadata={"description": "loading, ready, off or failed"})
    model = ma.fields.String(allow_none=True)
    reason = ma.fields.String(allow_none=True, metadata={"description": "why it is off or failed"})


class ReadyResponse(ma.Schema):
    """Readiness, once the model and the store answer (else a 503 error), and each text tower's state."""

    ready = ma.fields.Boolean(required=True)
    model = ma.fields.String()
    device = ma.fields.String()
    towers = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(TowerState))


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


class EvalReportResponse(ma.Schema):
    """The latest evaluation report (`make eval`): its run, chart URLs and the report's JSON."""

    run = ma.fields.String(required=True)
    created_at = ma.fields.String(allow_none=True)
    charts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True)
    report = ma.fields.Dict(required=True, metadata={"description": "report.json as `make eval` wrote it"})


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
    text_encoder = TEXT_ENCODER  # for every text example


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
