"""`python -m ingest [PATH ...]`: encode new photos and make them searchable (behind `make ingest`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from core.calibration import CalibrationFileError
from core.classes import ClassesFileError
from core.settings import Settings, load_settings
from core.store import CollectionMismatch, StoreUnavailable, open_store, store_backend
from ingest.handoff import find_service
from ingest.parts import Part, parse_part
from ingest.scan import library_is_empty

EMPTY_LIBRARY_HINT = """\
The photo library ({images_dir}) holds no photos yet, so there is nothing to search.
  - `make dataset` downloads a CC-licensed landmark library (a dozen photos per class; --full for ~180),
  - or copy your own photos into {images_dir}/ (any folders),
then run `make ingest` (the running service picks them up without a restart)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__)
    parser.add_argument("paths", nargs="*", type=Path, help="files or folders (default: IMAGES_DIR)")
    parser.add_argument(
        "--recreate", action="store_true", help="drop the collections and re-encode everything"
    )
    parser.add_argument(
        "--prune", action="store_true", help="remove indexed images whose files left the library"
    )
    parser.add_argument("--no-crosscheck", action="store_true", help="skip the FAISS cross-check")
    parser.add_argument("--no-handoff", action="store_true", help="never hand the work to a running service")
    parser.add_argument(
        "--if-empty-hint", action="store_true", help="with an empty library, explain how to fill it"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--part",
        type=_part,
        default=None,
        metavar="I/N",
        help="only part I of N of the photos, split by content hash (N jobs fill one Qdrant server)",
    )
    return parser


def _part(text: str) -> Part:
    try:
        return parse_part(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    """Run the ingest job; exit 0 on success (skipped files included), 1 on failure, 2 on bad input."""
    args = _parser().parse_args(argv)
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    from core.quiet_logs import quiet_library_logs

    quiet_library_logs()
    from core.model import keep_freed_memory

    keep_freed_memory()  # before the store's and the model's threads start (see its docstring)
    if args.if_empty_hint and not args.paths and library_is_empty(settings.images_dir):
        print(EMPTY_LIBRARY_HINT.format(images_dir=settings.images_dir))
        return 0
    paths = args.paths or [settings.images_dir]
    if store_backend(settings).single_process and not args.no_handoff and args.part is None:
        service = find_service(settings.data_dir, settings.port)
        if service is not None:
            return _ingest_in_service(service, paths, args)
    return _ingest_here(settings, paths, args)


def _ingest_in_service(service: object, paths: list[Path], args: argparse.Namespace) -> int:
    import requests

    from ingest.handoff import RunningService, ServiceGone

    assert isinstance(service, RunningService)
    print(f"A Wonders service is running at {service.url}: handing the ingest to it.")
    try:
        service.start(paths, args.recreate, args.prune)
        final = service.follow(show_progress=not args.quiet)
    except (ServiceGone, RuntimeError, requests.RequestException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if final.get("state") == "failed":
        print(f"error: {final.get('error')}", file=sys.stderr)
        return 1
    print(final.get("summary", ""))
    if final.get("crosscheck_summary"):
        print(final["crosscheck_summary"])
    return 0


def _ingest_here(settings: Settings, paths: list[Path], args: argparse.Namespace) -> int:
    from core.model import ModelUnavailable, load_clip
    from eval.crosscheck import format_report, run_crosscheck, save_report
    from ingest.pipeline import run_ingest

    store = open_store(settings)
    try:
        store.ping()
        encoder = load_clip(settings)
        report = run_ingest(
            settings,
            encoder,
            store,
            paths,
            recreate=args.recreate,
            show_progress=not args.quiet,
            prune=args.prune,
            part=args.part,
        )
        if args.part is not None:
            print(f"part {args.part} of the library (by content hash)")
        print(report.summary())
        if not args.no_crosscheck:
            check = run_crosscheck(store, settings)
            save_report(check, settings.crosscheck_report)
            print(format_report(check))
        return 0
    except ModelUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except CollectionMismatch as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (ClassesFileError, CalibrationFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except StoreUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a full disk, a read-only data folder
        print(
            f"error: cannot write under DATA_DIR ({settings.data_dir}): {err.strerror or err}",
            file=sys.stderr,
        )
        return 1
    except Exception as err:  # the store engine raises bare Exceptions (a full disk inside its WAL)
        print(f"error: the store failed: {_first_line(err)}", file=sys.stderr)
        return 1
    finally:
        try:
            store.close()
        except Exception as err:  # flushing onto a full disk fails too; already said above
            logging.getLogger(__name__).debug("closing the store failed: %s", err)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
