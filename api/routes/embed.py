"""The embedding service: texts and/or one photo in, unit vectors in the library's space out."""

from __future__ import annotations

from typing import Any

from flask import request

from api.context import service
from api.openapi import Blueprint
from api.schemas import EmbedArgs, EmbedFiles, EmbedResponse
from api.uploads import read_upload
from search.results import EmbedAnswer

blp = Blueprint("embed", __name__, url_prefix="/api", description="Embeddings for other tools")

_REQUEST_BODY = {
    "content": {
        "application/json": {"schema": EmbedArgs},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "texts": {"type": "array", "items": {"type": "string"}},
                    "text_encoder": {"type": "string", "enum": ["auto", "clip", "multilingual"]},
                    "image": {"type": "string", "format": "binary"},
                },
            }
        },
    }
}


@blp.route("/embed", methods=["POST"])
@blp.doc(requestBody=_REQUEST_BODY)
@blp.response(200, EmbedResponse)
def embed() -> EmbedAnswer:
    """Embeddings: unit vectors of texts and of one photo, in the library's space.

    Texts as JSON `{"texts": [...], "text_encoder": "auto"}`, or as form fields `texts` in a multipart
    request whose field `image` holds a photo. Each vector names the tower and model that made it; they
    are the very vectors search uses (the same routing and cache)."""
    parser = blp.ARGUMENTS_PARSER
    if request.mimetype == "multipart/form-data":
        args: dict[str, Any] = parser.parse(EmbedArgs, location="form")
        files = parser.parse(EmbedFiles, location="files")
        image = read_upload(files) if "image" in files else None
    else:
        args, image = parser.parse(EmbedArgs, location="json"), None
    return service().embed(args["texts"], args["text_encoder"], image)
