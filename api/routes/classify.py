"""Zero-shot classification of an uploaded photo against the stored class vectors."""

from __future__ import annotations

from typing import Any

from api.context import service
from api.openapi import Blueprint
from api.schemas import ClassifyResponse, UploadFiles
from api.uploads import read_upload, upload_errors
from search.results import ClassifyAnswer

blp = Blueprint("classify", __name__, url_prefix="/api", description="Zero-shot classification")


@blp.route("/classify", methods=["POST"])
@upload_errors(blp)
@blp.arguments(UploadFiles, location="files")
@blp.response(200, ClassifyResponse)
def classify(files: dict[str, Any]) -> ClassifyAnswer:
    """Which landmark class a photo shows: label, confidence and the top 3 (CLIP's logit scale)."""
    return service().classify(read_upload(files))
