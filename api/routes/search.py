"""Text search (GET and POST) and image search (multipart upload)."""

from __future__ import annotations

from typing import Any

from api.context import service
from api.openapi import Blueprint
from api.schemas import PageArgs, SearchResponse, TextSearchArgs, UploadFiles, filters, page_request
from api.uploads import read_upload, upload_errors
from search import Page, Query, TextTerm, UploadTerm

blp = Blueprint("search", __name__, url_prefix="/api", description="Text and image search")


def _text_search(args: dict[str, Any]) -> Page:
    query = Query(
        TextTerm(args["q"], args["text_encoder"]), filters(args), page_request(args), diverse=args["diverse"]
    )
    return service().search(query)


@blp.route("/search", methods=["GET"])
@blp.arguments(TextSearchArgs, location="query")
@blp.response(200, SearchResponse)
def search_get(args: dict[str, Any]) -> Page:
    """Text to image: the photos that best match a description."""
    return _text_search(args)


@blp.route("/search", methods=["POST"])
@blp.arguments(TextSearchArgs, location="json")
@blp.response(200, SearchResponse)
def search_post(args: dict[str, Any]) -> Page:
    """Text to image with a JSON body (for queries too long for a URL)."""
    return _text_search(args)


@blp.route("/search/image", methods=["POST"])
@upload_errors(blp)
@blp.arguments(PageArgs, location="query")
@blp.arguments(UploadFiles, location="files")
@blp.response(200, SearchResponse)
def search_image(args: dict[str, Any], files: dict[str, Any]) -> Page:
    """Image to image: the photos most similar to an uploaded one (never stored)."""
    query = Query(UploadTerm(read_upload(files)), filters(args), page_request(args), diverse=args["diverse"])
    return service().search(query)
