"""`python -m ops.cells`: train the cells that route text queries, now (behind `make cells`).

Ingest trains them by itself once the library has CELLS_MIN_PHOTOS photos (and again when it has doubled
since); this is for a library that should have them sooner, or fresh ones. What cells are and why:
core/cells.py. While the service runs it owns the embedded shard, so the work is handed to it (like
`make ingest`); it uses the new cells at once.
"""

from __future__ import annotations

import argparse
import logging
import sys

from core.cells import train_cells
from core.settings import load_settings
from core.store import CollectionMissing, StoreUnavailable, open_store, store_backend


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.cells", description=__doc__)
    parser.add_argument(
        "--cells", type=int, default=None, help="how many cells (default: one per 250 photos)"
    )
    parser.add_argument("--no-handoff", action="store_true", help="never hand the work to a running service")
    parser.add_argument("--quiet", action="store_true", help="no progress")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train; exit 0 when trained, 1 when it could not be."""
    args = _parser().parse_args(argv)
    if args.cells is not None and args.cells < 1:
        print("error: --cells must be at least 1", file=sys.stderr)
        return 2
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    if store_backend(settings).single_process and not args.no_handoff:
        from ingest.handoff import find_service
        from ops.handoff import run_in_service

        running = find_service(settings.data_dir, settings.port)
        if running is not None:
            print(f"A Wonders service is running at {running.url}: handing the training to it.")
            return run_in_service(running, "cells", {"cells": args.cells}, not args.quiet)
    store = open_store(settings)
    try:
        store.ping()
        report = train_cells(store, cells=args.cells, progress=None if args.quiet else _print_progress)
    except (CollectionMissing, ValueError, StoreUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(report.summary())
    return 0


def _print_progress(phase: str, done: int, total: int) -> None:
    end = "" if total and done < total else "\n"
    print(f"\r{phase}: {done}/{total}" if total else phase, end=end, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
