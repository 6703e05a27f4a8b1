"""Libraries' log lines a user cannot act on, kept out of the terminal (their warnings still show)."""

from __future__ import annotations

import logging

# faiss tries its AVX512 build first and logs the ImportError of a wheel that has none; sentence-
# transformers says it is "initializing a new model" for every CLIP folder (they have no modules.json).
QUIET_AT_INFO = ("faiss.loader", "faiss", "sentence_transformers")


def quiet_library_logs() -> None:
    """Raise those loggers to WARNING (call after logging.basicConfig)."""
    for name in QUIET_AT_INFO:
        logging.getLogger(name).setLevel(logging.WARNING)
