"""Image files and thumbnails, served by id only: no part of a request ever becomes a path."""

from __future__ import annotations

import mimetypes

from flask import Response, send_file

from api.context import service
from api.errors import ApiError
from api.openapi import Blueprint

blp = Blueprint("files", __name__, url_prefix="/images", description="Image files by id")

# Ids are content hashes: the bytes behind an id never change, so caches may keep them.
IMMUTABLE = "public, max-age=604800, immutable"


@blp.route("/<point_id>", methods=["GET"])
@blp.doc(responses={200: {"description": "the photo", "content": {"image/*": {}}}})
def image_file(point_id: str) -> Response:
    """The photo itself."""
    path = service().image_file(point_id)
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    try:
        response = send_file(path, mimetype=mimetype, conditional=True, etag=True, max_age=604800)
    except OSError:  # removed or made unreadable since it was found
        raise ApiError(404, "file_missing", "The image's file can no longer be read.") from None
    response.headers["Cache-Control"] = IMMUTABLE
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blp.route("/<point_id>/thumb", methods=["GET"])
@blp.doc(responses={200: {"description": "a JPEG thumbnail", "content": {"image/jpeg": {}}}})
def thumbnail(point_id: str) -> Response:
    """The photo's JPEG thumbnail (made from the photo if it is missing)."""
    path = service().thumbnail(point_id)
    response = send_file(path, mimetype="image/jpeg", conditional=True, etag=True, max_age=604800)
    response.headers["Cache-Control"] = IMMUTABLE
    return response
