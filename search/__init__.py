"""The search layer: every verb a user has, as typed requests and typed answers, with no web framework.

`SearchService` (service.py) answers; `Query` (query.py) is what is asked; results.py holds the answers;
errors.py what can go wrong. `api/` parses HTTP into these and serialises them back.
"""

from search.errors import SearchError
from search.query import Filters, PageRequest, Query, StoredTerm, TextTerm, UploadTerm
from search.results import Page
from search.service import SearchService

__all__ = [
    "Filters",
    "Page",
    "PageRequest",
    "Query",
    "SearchError",
    "SearchService",
    "StoredTerm",
    "TextTerm",
    "UploadTerm",
]
