"""Zero-shot classification of an uploaded photo against the stored class vectors."""

from __future__ import annotations

import time
from typing import Any

from flask import g

from api.openapi import Blueprint
from api.schemas import ClassifyResponse, UploadFiles
from api.uploads import decode_upload, service

blp = Blueprint("classify", __name__, url_prefix="/api", description="Zero-shot classification")


@blp.route("/classify", methods=["POST"])
@blp.arguments(UploadFiles, location="files")
@blp.response(200, ClassifyResponse)
def classify(files: dict[str, Any]) -> dict[str, Any]:
    """Which landmark class a photo shows: label, confidence and the top 3 (CLIP's logit scale)."""
    wonders = service()
    encoder, _ = wonders.require_ready()
    decoded = decode_upload(files)
    vector = encoder.image.encode_images([decoded.image])
    result = wonders.classifier().classify(vector)[0]
    return {
        "label": result.best.cls.label(),
        "confidence": round(result.best.confidence, 6),
        "top3": [score.as_dict() for score in result.top3],
        "took_ms": round((time.perf_counter() - g.started) * 1000, 1),
    }
