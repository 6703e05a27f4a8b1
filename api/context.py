"""The running app's collaborators, typed: the search service and the ingest job."""

from __future__ import annotations

from flask import current_app

from ingest.autostart import LibraryIndexer
from ingest.job import IngestJob
from search import SearchService


def service() -> SearchService:
    """The SearchService of the running app."""
    found: SearchService = current_app.extensions["wonders"]
    return found


def ingest_job() -> IngestJob:
    """The ingest job of the running app (the service side of `make ingest`'s hand-off)."""
    found: IngestJob = current_app.extensions["wonders_ingest"]
    return found


def indexer() -> LibraryIndexer:
    """The service's own background indexing (and first-run download) of the library."""
    found: LibraryIndexer = current_app.extensions["wonders_indexer"]
    return found
