"""Uploaded query photos: the multipart field `image`, read in memory up to the upload limit, never stored."""

from __future__ import annotations

from typing import Any

from werkzeug.datastructures import FileStorage

from api.context import service
from api.errors import ApiError


def read_upload(files: dict[str, Any]) -> bytes:
    """The bytes of the uploaded `image`, or a 400 (no such field) / 413 (over MAX_UPLOAD_MB) ApiError."""
    upload = files.get("image")
    if not isinstance(upload, FileStorage):
        raise ApiError(400, "missing_image", "Send the photo as the multipart form field 'image'.")
    settings = service().settings
    data: bytes = upload.stream.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, "payload_too_large", f"The upload is larger than {settings.max_upload_mb:g} MB.")
    return data
