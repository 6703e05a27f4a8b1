"""One image's metadata, and more like it from its stored vector (no encoding)."""

from __future__ import annotations

from typing import Any

from api.context import service
from api.openapi import Blueprint
from api.schemas import ImageMeta, SearchResponse, SimilarArgs, filters, page_request
from search import Page, Query, StoredTerm
from search.results import ImageRecord

blp = Blueprint("images", __name__, url_prefix="/api/images", description="Stored images")


@blp.route("/<point_id>", methods=["GET"])
@blp.response(200, ImageMeta)
def image_meta(point_id: str) -> ImageRecord:
    """An image's class, top 3, size, attribution and urls."""
    return service().image(point_id)


@blp.route("/<point_id>/similar", methods=["GET"])
@blp.arguments(SimilarArgs, location="query")
@blp.response(200, SearchResponse)
def similar(args: dict[str, Any], point_id: str) -> Page:
    """More like this: nearest images to a stored one, itself excluded."""
    query = Query(StoredTerm(point_id), filters(args), page_request(args), diverse=args["diverse"])
    return service().search(query)
