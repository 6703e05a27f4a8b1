"""Near-duplicates: the groups of the same photo, and "not a duplicate"."""

from __future__ import annotations

from typing import Any

from api.context import service
from api.openapi import Blueprint
from api.schemas import DuplicatesArgs, DuplicatesResponse, NotDuplicateArgs
from search.duplicates import DuplicatePage

blp = Blueprint("duplicates", __name__, url_prefix="/api/duplicates", description="Near-duplicates")


@blp.route("", methods=["GET"])
@blp.arguments(DuplicatesArgs, location="query")
@blp.response(200, DuplicatesResponse)
def duplicates(args: dict[str, Any]) -> DuplicatePage:
    """Groups of the same photo (re-encoded, resized, centre-cropped, recoloured, or byte-identical
    files), each around one representative, biggest groups first."""
    return service().duplicates(args["k"], args["offset"])


@blp.route("/<representative>/not-duplicate", methods=["POST"])
@blp.arguments(NotDuplicateArgs, location="json")
@blp.response(204)
def not_duplicate(args: dict[str, Any], representative: str) -> None:
    """Remember that a photo is not a duplicate of the group's representative (it leaves the group)."""
    service().not_duplicate(representative, args["id"])
