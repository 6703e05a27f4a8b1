"""Point ids derived from content, so re-ingesting is idempotent and byte-identical files collapse."""

from __future__ import annotations

import hashlib
import re
import uuid

_NAMESPACE = uuid.UUID("3b0c8c5e-8a51-4d8e-bb0e-6f1b1a3e2c77")
_UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of the bytes, in hex."""
    return hashlib.sha256(data).hexdigest()


def image_point_id(sha256: str) -> str:
    """The point id of an image: a UUID derived from the SHA-256 of its file's bytes."""
    return str(uuid.uuid5(_NAMESPACE, sha256))


def is_point_id(text: str) -> bool:
    """True for a canonical lower-case UUID string (what every point id looks like)."""
    return bool(_UUID_PATTERN.fullmatch(text))


def canonical_point_id(text: str) -> str | None:
    """The canonical form of a point id written any way UUIDs are written, or None if it is not one."""
    if isinstance(text, str) and _UUID_PATTERN.fullmatch(text):
        return text  # already canonical: the common case (ids come back as the API gave them)
    try:
        return str(uuid.UUID(text))
    except (ValueError, AttributeError, TypeError):
        return None
