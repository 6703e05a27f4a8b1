"""Uploaded query photos: bounded, decoded in memory with the same safe decoding as ingest, never stored."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from werkzeug.datastructures import FileStorage

from api.errors import ApiError
from core.images import DecodedImage, UnsupportedImage, decode_image


def service() -> Any:
    """The WondersService of the running app."""
    return current_app.extensions["wonders"]


def decode_upload(files: dict[str, Any]) -> DecodedImage:
    """The uploaded `image` decoded to RGB, or a 413/415 ApiError."""
    upload = files.get("image")
    if not isinstance(upload, FileStorage):
        raise ApiError(400, "missing_image", "Send the photo as the multipart form field 'image'.")
    settings = service().settings
    data = upload.stream.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, "payload_too_large", f"The upload is larger than {settings.max_upload_mb:g} MB.")
    encoder = service().encoder
    min_side = 2 * encoder.identity.image_size if encoder is not None else 448
    try:
        return decode_image(data, settings.max_image_pixels, min_side=min_side)
    except UnsupportedImage as err:
        raise ApiError(
            415,
            "unsupported_image",
            f"The upload is not a decodable image: {err.reason}.",
            {"reason": err.reason},
        ) from None


def parse_point_id(text: str) -> str:
    """The canonical form of a point id from a URL, or a 404 for anything that is not one."""
    try:
        return str(uuid.UUID(text))
    except (ValueError, AttributeError):
        raise ApiError(404, "not_found", "No image with this id.") from None
