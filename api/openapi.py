"""flask-smorest configured for this API: validation errors are 400s and errors share one schema."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import flask
import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import MultiDict

from api.schemas import ErrorResponse


class WondersParser(FlaskParser):
    """Invalid parameters are a 400 Bad Request (webargs defaults to 422).

    webargs excludes unknown query parameters whatever the schema says; for the query string we defer to
    the schema instead, so StrictSchema's RAISE turns a typo (`?kk=5`) into a 400.
    """

    DEFAULT_VALIDATION_STATUS: ClassVar[int] = 400  # type: ignore[misc]
    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar[dict[str, str | None]] = {  # type: ignore[misc]
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": None,
        "querystring": None,
    }

    def load_querystring(self, req: flask.Request, schema: ma.Schema) -> Any:
        """The query parameters; one given twice (`?k=5&k=50`) is a 400, not silently its first value."""
        _refuse_repeated(req.args, schema)
        return super().load_querystring(req, schema)

    def load_files(self, req: flask.Request, schema: ma.Schema) -> Any:
        """The uploaded files; two files in the field `image` are a 400, not silently the first."""
        _refuse_repeated(req.files, schema)
        return super().load_files(req, schema)

    def _raw_load_json(self, req: flask.Request) -> Any:
        """The JSON body; a body Python's parser cannot take (nested thousands deep, an integer of
        thousands of digits) is invalid JSON, a 400, rather than an unhandled error."""
        try:
            return super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise
        except (RecursionError, ValueError) as err:
            raise json.JSONDecodeError(f"unparseable JSON ({type(err).__name__})", "<body>", 0) from None


def _refuse_repeated(values: MultiDict[str, Any], schema: ma.Schema) -> None:
    names = {field.data_key or name for name, field in schema.fields.items()}
    repeated = {
        key: ["Given more than once."] for key, items in values.lists() if key in names and len(items) > 1
    }
    if repeated:
        raise ma.ValidationError(repeated)


class Blueprint(flask_smorest.Blueprint):
    """A documented blueprint whose argument errors are 400s."""

    ARGUMENTS_PARSER = WondersParser()


class Api(flask_smorest.Api):
    """The OpenAPI extension, documenting our error shape for every error response."""

    ERROR_SCHEMA = ErrorResponse


def openapi_config(version: str) -> dict[str, object]:
    """Flask config keys of flask-smorest: the document is served at /api/openapi.json."""
    return {
        "API_TITLE": "Wonders",
        "API_VERSION": version,
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "API_SPEC_OPTIONS": {
            "info": {
                "description": "Semantic search over photos of the world's landmarks and natural wonders "
                '(CLIP embeddings in Qdrant). All errors are JSON: {"error": {"code", "message"}}.'
            }
        },
    }
