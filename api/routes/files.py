"""Image files and thumbnails, served by id only: no part of a request ever becomes a path."""

from __future__ import annotations

from flask import Response, request, send_file

from api.context import service
from api.openapi import Blueprint
from search.files import ServedFile

blp = Blueprint("files", __name__, url_prefix="/images", description="Image files by id")

# Ids are content hashes: the bytes behind an id never change, so caches may keep them (a changed file
# is never served under the old id: search/files.py).
IMMUTABLE = "public, max-age=604800, immutable"


def _send(served: ServedFile) -> Response:
    """The open file as a cacheable response (ranges and If-None-Match answered); no file name is sent."""
    response = send_file(served.handle, mimetype=served.mimetype, etag=served.etag, max_age=604800)
    response.content_length = served.size
    response.make_conditional(request, accept_ranges=True, complete_length=served.size)  # in place
    response.headers["Cache-Control"] = IMMUTABLE
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blp.route("/<point_id>", methods=["GET"])
@blp.doc(responses={200: {"description": "the photo", "content": {"image/*": {}}}})
def image_file(point_id: str) -> Response:
    """The photo itself, while its file is still the indexed one."""
    return _send(service().image_file(point_id))


@blp.route("/<point_id>/thumb", methods=["GET"])
@blp.doc(responses={200: {"description": "a JPEG thumbnail", "content": {"image/jpeg": {}}}})
def thumbnail(point_id: str) -> Response:
    """The photo's JPEG thumbnail (made from the photo if it is missing)."""
    return _send(service().thumbnail(point_id))
