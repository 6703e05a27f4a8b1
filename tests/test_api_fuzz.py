"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis, over WSGI).

Every documented operation but the loopback-only administration gets generated requests, valid and
invalid; none may answer 5xx, and every answer must conform to the document (status, content type, body).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.factory import create_app
from core.model import ClipModel
from core.settings import Settings

pytest_plugins = ["tests.api_helpers"]


def _openapi_document() -> dict[str, Any]:
    """The document as the app serves it; it does not depend on the model, so no model is loaded here."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = Settings(_env_file=None, images_dir=folder / "images", data_dir=folder / "data")  # type: ignore[call-arg]
        document: dict[str, Any] = (
            create_app(settings, load=False).test_client().get("/api/openapi.json").json
        )
        return document


# Loaded eagerly: schemathesis' lazy `from_fixture` does not run under pytest 9 (it sets Node._nodeid).
schema = schemathesis.openapi.from_dict(_openapi_document()).exclude(path_regex=r"^/api/admin")


@pytest.fixture(scope="module")
def fuzz_app(api_library: Any, encoder: ClipModel) -> Flask:
    """One ready app over the session library for every generated request."""
    return create_app(api_library.settings, encoder, api_library.store)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples on every run; no .hypothesis database in the repository
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case, fuzz_app: Flask) -> None:
    # Data valid by the document can still be refused on its merits, which no schema can express: an
    # unknown class id (400), a photo that does not decode (415). Those are not failures.
    response = case.call_and_validate(app=fuzz_app, excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500
