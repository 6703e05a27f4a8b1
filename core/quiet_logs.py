"""Libraries' log lines a user cannot act on, kept out of the terminal (their warnings still show)."""

from __future__ import annotations

import logging

# faiss tries its AVX512 build first and logs the ImportError of a wheel that has none; sentence-
# transformers says it is "initializing a new model" for every CLIP folder (they have no modules.json).
QUIET_AT_INFO = ("faiss.loader", "faiss", "sentence_transformers")


def quiet_library_logs() -> None:
    """Raise those loggers to WARNING (call after logging.basicConfig), and drop transformers' "Loading
    weights" progress bar, drawn into the service's log at every start."""
    for name in QUIET_AT_INFO:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency of sentence-transformers
        pass
