"""The embedding service: texts and/or one photo in, unit vectors in the library's space out."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from flask import request

from api.context import service
from api.errors import ApiError, validation_message
from api.openapi import Blueprint
from api.schemas import MAX_EMBED_TEXTS, EmbedArgs, EmbedFiles, EmbedResponse
from api.uploads import read_upload
from search.results import EmbedAnswer
from search.text_router import TEXT_ENCODERS

blp = Blueprint("embed", __name__, url_prefix="/api", description="Embeddings for other tools")

_REQUEST_BODY = {
    "content": {
        "application/json": {"schema": EmbedArgs},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "texts": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1, "maxLength": 20_000},
                        "maxItems": MAX_EMBED_TEXTS,
                        "description": 'one field holding a JSON array of texts: ["...", "..."]',
                    },
                    "text_encoder": {"type": "string", "enum": list(TEXT_ENCODERS)},
                    "image": {"type": "string", "format": "binary"},
                },
                "additionalProperties": False,
            },
            "encoding": {"texts": {"contentType": "application/json"}},
        },
    }
}


@blp.route("/embed", methods=["POST"])
@blp.doc(requestBody=_REQUEST_BODY)
@blp.response(200, EmbedResponse)
def embed() -> EmbedAnswer:
    """Embeddings: unit vectors of texts and of one photo, in the library's space.

    Texts as JSON `{"texts": [...], "text_encoder": "auto"}`, or in a multipart request (whose field
    `image` holds a photo) as the field `texts` holding a JSON array. Each vector names the tower and model that made it; they
    are the very vectors search uses (the same routing and cache)."""
    parser = blp.ARGUMENTS_PARSER
    if request.mimetype == "multipart/form-data":
        args = _form_args()
        files = parser.parse(EmbedFiles, location="files")
        image = read_upload(files) if "image" in files else None
    else:
        args, image = parser.parse(EmbedArgs, location="json"), None
    return service().embed(args["texts"], args["text_encoder"], image)


def _form_args() -> dict[str, Any]:
    """The form fields of a multipart request, checked like a JSON body: `texts` is one field holding
    a JSON array (a field given twice, unknown fields and bad values are 400s)."""
    form = request.form
    data: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    for key, values in form.lists():
        if len(values) > 1:
            problems[key] = ["Given more than once."]
        elif key == "texts":
            try:
                data[key] = json.loads(values[0])
            except ValueError:
                problems[key] = ['Not a JSON array of texts, such as ["a photo", "фото"].']
        else:
            data[key] = values[0]
    if not problems:
        try:
            loaded: dict[str, Any] = EmbedArgs().load(data)
            return loaded
        except ma.ValidationError as err:
            problems = err.normalized_messages()  # type: ignore[assignment]
    messages = {"form": problems}
    raise ApiError(400, "invalid_parameter", validation_message(messages), messages)
