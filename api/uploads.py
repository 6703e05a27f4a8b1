"""Uploaded query photos: the multipart field `image`, read in memory up to the upload limit, never stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from werkzeug.datastructures import FileStorage

from api.context import service
from api.errors import ApiError
from api.openapi import Blueprint
from api.schemas import ErrorResponse

F = TypeVar("F", bound=Callable[..., Any])


def upload_errors(blp: Blueprint) -> Callable[[F], F]:
    """Document what an upload endpoint answers besides 400: 413 (too large) and 415 (not an image)."""

    def decorate(view: F) -> F:
        view = blp.alt_response(
            413, schema=ErrorResponse, description="The upload is larger than MAX_UPLOAD_MB."
        )(view)
        view = blp.alt_response(
            415,
            schema=ErrorResponse,
            description="The upload is not a decodable image (unsupported format, truncated, a bomb).",
        )(view)
        return view

    return decorate


def read_upload(files: dict[str, Any]) -> bytes:
    """The bytes of the uploaded `image`, or a 400 (no such field) / 413 (over MAX_UPLOAD_MB) ApiError."""
    upload = files.get("image")
    if not isinstance(upload, FileStorage):
        raise ApiError(400, "missing_image", "Send the photo as the multipart/form-data file field 'image'.")
    settings = service().settings
    data: bytes = upload.stream.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, "payload_too_large", f"The upload is larger than {settings.max_upload_mb:g} MB.")
    return data
