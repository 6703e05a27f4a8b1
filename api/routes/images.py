"""One image's metadata, and more like it from its stored vector (no encoding)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from api.errors import ApiError
from api.openapi import Blueprint
from api.routes.search import page_answer
from api.schemas import ImageMeta, SearchResponse, SimilarArgs
from api.uploads import parse_point_id, service
from core.store import IMAGES

blp = Blueprint("images", __name__, url_prefix="/api/images", description="Stored images")


@blp.route("/<point_id>", methods=["GET"])
@blp.response(200, ImageMeta)
def image_meta(point_id: str) -> dict[str, Any]:
    """An image's class, top 3, size, attribution and urls."""
    wonders = service()
    _, store = wonders.require_ready()
    found = store.retrieve(IMAGES, [parse_point_id(point_id)])
    if not found:
        raise ApiError(404, "not_found", "No image with this id.")
    point = found[0]
    payload = point.payload
    return {
        "id": point.id,
        **wonders.describe(point.id, payload),
        "top3": wonders.top3(payload),
        "path": _public_path(payload.get("path")),
        "sha256": payload.get("sha256"),
        "bytes": payload.get("bytes"),
        "format": payload.get("format"),
        "ingested_at": payload.get("ingested_at"),
    }


def _public_path(stored: Any) -> Any:
    """The path inside the library; a file ingested from outside it shows only its name, no server path."""
    if isinstance(stored, str) and PurePosixPath(stored).is_absolute():
        return PurePosixPath(stored).name
    return stored


@blp.route("/<point_id>/similar", methods=["GET"])
@blp.arguments(SimilarArgs, location="query")
@blp.response(200, SearchResponse)
def similar(args: dict[str, Any], point_id: str) -> dict[str, Any]:
    """More like this: nearest images to a stored one, itself excluded."""
    wonders = service()
    _, store = wonders.require_ready()
    label = wonders.check_class(args.get("class_"))
    k, offset = args["k"], args["offset"]
    hits = store.similar(IMAGES, parse_point_id(point_id), k + 1, offset=offset, label=label)
    if hits is None:
        raise ApiError(404, "not_found", "No image with this id.")
    return page_answer(hits, k, offset)
