"""The Flask REST API of Wonders: search, similar, classify, files, stats (run by gunicorn)."""

from api.factory import create_app

__all__ = ["create_app"]
