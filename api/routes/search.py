"""Text search (GET and POST) and image search (multipart upload)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from flask import g

from api.errors import ApiError
from api.openapi import Blueprint
from api.schemas import PageArgs, SearchResponse, TextSearchArgs, UploadFiles
from api.uploads import decode_upload, service
from core.store import Hit

blp = Blueprint("search", __name__, url_prefix="/api", description="Text and image search")


def page(vector: np.ndarray, args: dict[str, Any]) -> dict[str, Any]:
    """Run a search for one page and shape the answer."""
    wonders = service()
    label = wonders.check_class(args.get("class_"))
    k, offset = args["k"], args["offset"]
    # One extra result tells whether a next page exists, so next_offset is null on the last page.
    hits = wonders.search(vector, k + 1, offset, label, args.get("min_score"))
    return page_answer(hits, k, offset)


def page_answer(hits: list[Hit], k: int, offset: int) -> dict[str, Any]:
    """The answer for a page fetched with k + 1 results."""
    wonders = service()
    return {
        "results": [wonders.result(hit) for hit in hits[:k]],
        "k": k,
        "offset": offset,
        "next_offset": offset + k if len(hits) > k else None,
        "took_ms": round((time.perf_counter() - g.started) * 1000, 1),
    }


def _text_search(args: dict[str, Any]) -> dict[str, Any]:
    query = args["q"].strip()
    if not query:
        raise ApiError(400, "empty_query", "Type something to search for.")
    return page(service().text_vector(query), args)


@blp.route("/search", methods=["GET"])
@blp.arguments(TextSearchArgs, location="query")
@blp.response(200, SearchResponse)
def search_get(args: dict[str, Any]) -> dict[str, Any]:
    """Text to image: the photos that best match a description."""
    return _text_search(args)


@blp.route("/search", methods=["POST"])
@blp.arguments(TextSearchArgs, location="json")
@blp.response(200, SearchResponse)
def search_post(args: dict[str, Any]) -> dict[str, Any]:
    """Text to image with a JSON body (for queries too long for a URL)."""
    return _text_search(args)


@blp.route("/search/image", methods=["POST"])
@blp.arguments(PageArgs, location="query")
@blp.arguments(UploadFiles, location="files")
@blp.response(200, SearchResponse)
def search_image(args: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    """Image to image: the photos most similar to an uploaded one (never stored)."""
    wonders = service()
    encoder, _ = wonders.require_ready()
    decoded = decode_upload(files)
    vector = encoder.image.encode_images([decoded.image])[0]
    return page(vector, args)
