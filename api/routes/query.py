"""Search with examples: `POST /api/query`, JSON, or multipart when photos are uploaded."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from flask import request
from werkzeug.datastructures import FileStorage

from api.context import service
from api.errors import ApiError
from api.openapi import Blueprint
from api.schemas import QueryArgs, QueryForm, SearchResponse, filters, page_request
from search import Page
from search.query import Example, Query, StoredTerm, Term, TextTerm, UploadTerm
from search.text_router import TextEncoder

blp = Blueprint("query", __name__, url_prefix="/api", description="Search with examples")


@blp.route("/query", methods=["POST"])
@blp.doc(
    requestBody={
        "required": True,
        "content": {"application/json": {"schema": QueryArgs}, "multipart/form-data": {"schema": QueryForm}},
    }
)
@blp.response(200, SearchResponse)
def query_post() -> Page:
    """Photos like the positive examples and unlike the negative ones (texts, stored or uploaded photos).

    The examples are combined into one vector (a weighted sum of unit vectors, positives minus negatives,
    renormalised); uploaded photos go in multipart file fields named by the examples' `upload`, and the
    JSON query in the form field `query`."""
    if request.mimetype == "multipart/form-data":
        raw, uploads = _form_query()
    else:
        raw, uploads = request.get_json(silent=True), {}
    try:
        args = QueryArgs().load(raw if isinstance(raw, dict) else {"": raw})
        query = query_of(args, uploads)
    except ma.ValidationError as err:
        raise ApiError(400, "invalid_parameter", _message(err.messages), err.messages) from None
    return service().search(query)


def _form_query() -> tuple[Any, dict[str, bytes]]:
    """The JSON query of a multipart form and the bytes of its files (all within the upload limit)."""
    text = request.form.get("query")
    if text is None:
        raise ApiError(400, "invalid_parameter", "Send the query as JSON in the form field 'query'.")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_parameter", "The form field 'query' is not JSON.") from None
    limit = service().settings.max_upload_bytes
    uploads: dict[str, bytes] = {}
    for name, upload in request.files.items(multi=True):
        if name in uploads or not isinstance(upload, FileStorage):
            raise ApiError(400, "invalid_parameter", f"The form field '{name[:64]}' is given twice.")
        uploads[name] = upload.stream.read(limit + 1)
        if sum(len(d) for d in uploads.values()) > limit:
            raise ApiError(413, "payload_too_large", "The uploads are larger than this server accepts.")
    return raw, uploads


def _message(messages: Any) -> str:
    return "invalid parameters: " + json.dumps(messages, ensure_ascii=False)[:500]


def query_of(args: dict[str, Any], uploads: dict[str, bytes]) -> Query:
    """The Query that parsed QueryArgs ask for; uploads maps file field names to their bytes."""
    encoder = args["text_encoder"]
    positive = [_example(e, uploads, encoder, negative=False) for e in args["positive"]]
    negative = [_example(e, uploads, encoder, negative=True) for e in args["negative"]]
    first = positive[0]
    return Query(
        first.term,
        filters(args),
        page_request(args),
        examples=(*positive[1:], *negative),
        diverse=args["diverse"],
        weight=first.weight,
    )


def _example(
    args: dict[str, Any], uploads: dict[str, bytes], text_encoder: TextEncoder, negative: bool
) -> Example:
    term: Term
    if "text" in args:
        term = TextTerm(args["text"], text_encoder)
    elif "id" in args:
        term = StoredTerm(args["id"])
    else:
        name = args["upload"]
        if name not in uploads:
            raise ma.ValidationError({"upload": [f"No uploaded file in the form field '{name}'."]})
        term = UploadTerm(uploads[name])
    return Example(term, args["weight"], negative)
