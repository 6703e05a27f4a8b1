"""Image files and thumbnails, served by id only: no part of a request ever becomes a path."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import Response, send_file

from api.errors import ApiError
from api.openapi import Blueprint
from api.uploads import parse_point_id, service
from core.images import UnsupportedImage, decode_image, thumbnail_jpeg
from core.store import IMAGES
from core.thumbnails import thumb_path, write_thumb

blp = Blueprint("files", __name__, url_prefix="/images", description="Image files by id")

# Ids are content hashes: the bytes behind an id never change, so caches may keep them.
IMMUTABLE = "public, max-age=604800, immutable"


def _library_file(point_id: str) -> Path:
    wonders = service()
    _, store = wonders.require_ready()
    found = store.retrieve(IMAGES, [point_id])
    if not found:
        raise ApiError(404, "not_found", "No image with this id.")
    stored = Path(str(found[0].payload.get("path", "")))
    path = stored if stored.is_absolute() else wonders.settings.images_dir / stored
    if not path.is_file():
        raise ApiError(404, "file_missing", "The image is indexed but its file is no longer in the library.")
    return path


@blp.route("/<point_id>", methods=["GET"])
@blp.doc(responses={200: {"description": "the photo", "content": {"image/*": {}}}})
def image_file(point_id: str) -> Response:
    """The photo itself."""
    path = _library_file(parse_point_id(point_id))
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
    point_id = parse_point_id(point_id)
    settings = service().settings
    path = thumb_path(settings.thumbs_dir, point_id)
    if not path.is_file():
        source = _library_file(point_id)
        try:
            decoded = decode_image(source, settings.max_image_pixels, min_side=settings.thumb_size)
        except (UnsupportedImage, OSError):
            raise ApiError(404, "file_missing", "The image's file can no longer be decoded.") from None
        path = write_thumb(settings.thumbs_dir, point_id, thumbnail_jpeg(decoded.image, settings.thumb_size))
    else:
        _library_file_known(point_id)
    response = send_file(path, mimetype="image/jpeg", conditional=True, etag=True, max_age=604800)
    response.headers["Cache-Control"] = IMMUTABLE
    return response


def _library_file_known(point_id: str) -> None:
    """A thumbnail is only served for an id that is in the collection."""
    _, store = service().require_ready()
    if not store.retrieve(IMAGES, [point_id]):
        raise ApiError(404, "not_found", "No image with this id.")
