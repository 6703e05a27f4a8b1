"""Command line of `make dataset` / `python -m dataset`: options, the run, and the closing summary."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from core.classes import ClassesFileError, LandmarkClass, load_classes
from core.settings import Settings, load_settings
from dataset import pixabay, wikimedia
from dataset.candidate import Source
from dataset.http import PoliteSession
from dataset.queries import terms_for
from dataset.runner import Runner, Summary

DEFAULT_PER_CLASS = 12
FULL_PER_CLASS = 180


def build_parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    """The argument parser (every option has a default suited to a first, quick run); the defaults of the
    library, the classes and the services' URLs come from `settings` (read now when not given)."""
    settings = settings or load_settings()
    parser = argparse.ArgumentParser(
        prog="python -m dataset",
        description="Download freely licensed landmark photos into <images-dir>/<class_id>/, with their "
        "attribution in each folder's manifest.json. Files already there are kept, not fetched again.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--per-class",
        type=int,
        default=DEFAULT_PER_CLASS,
        metavar="N",
        help=f"photos wanted per class (default {DEFAULT_PER_CLASS})",
    )
    size.add_argument(
        "--full", action="store_true", help=f"the full library: {FULL_PER_CLASS} photos per class"
    )
    parser.add_argument("--classes", default="", help="comma-separated class ids (default: all)")
    parser.add_argument(
        "--images-dir",
        type=Path,
        default=settings.images_dir,
        help=f"the photo library (default: IMAGES_DIR, now {settings.images_dir})",
    )
    parser.add_argument("--classes-file", type=Path, default=settings.classes_file, help=argparse.SUPPRESS)
    parser.add_argument(
        "--wikimedia-api-url",
        default=settings.wikimedia_api_url,
        help="MediaWiki api.php of Wikimedia Commons (default: WIKIMEDIA_API_URL)",
    )
    parser.add_argument(
        "--pixabay-api-url",
        default=settings.pixabay_api_url,
        help="Pixabay API (default: PIXABAY_API_URL); used only when PIXABAY_API_KEY is set",
    )
    parser.add_argument("--delay", type=float, default=0.5, help="seconds between requests (default 0.5)")
    parser.add_argument("--retries", type=int, default=5, help="retries on 429/5xx (default 5)")
    parser.add_argument("--backoff", type=float, default=2.0, help="first retry wait, doubled each time")
    parser.add_argument(
        "--max-wait", type=float, default=120.0, help="longest single wait, Retry-After included"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every retry")
    return parser


def select_classes(all_classes: list[LandmarkClass], wanted: str) -> list[LandmarkClass]:
    """The classes named in `wanted` ('a,b') in file order, all when empty; ValueError on unknown ids."""
    ids = [part.strip() for part in wanted.split(",") if part.strip()]
    if not ids:
        return all_classes
    known = {cls.id for cls in all_classes}
    unknown = [class_id for class_id in ids if class_id not in known]
    if unknown:
        raise ValueError(f"unknown class id(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [cls for cls in all_classes if cls.id in ids]


def format_summary(summary: Summary, images_dir: Path) -> str:
    """The closing table: per class downloaded / skipped / rejected / failed, then the reasons."""
    width = max([len("class")] + [len(r.class_id) for r in summary.reports])
    lines = [f"{'class':<{width}}  downloaded  skipped  rejected  failed  have/wanted"]
    for r in summary.reports:
        lines.append(
            f"{r.class_id:<{width}}  {r.downloaded:>10}  {r.skipped:>7}  {sum(r.rejected.values()):>8}  "
            f"{sum(r.failed.values()):>6}  {r.have:>4}/{r.target}"
        )
    for r in summary.reports:
        reasons = [f"{reason} x{count}" for reason, count in (r.rejected + r.failed).most_common(6)]
        if reasons:
            lines.append(f"  {r.class_id}: " + "; ".join(reasons))
    for source, message in summary.unusable.items():
        lines.append(f"{source} not used: {message}")
    if any(r.have for r in summary.reports):
        lines.append(f"Attribution of every photo: {images_dir}/<class>/manifest.json")
    else:
        lines.append("No photo was downloaded, so no attribution file was written.")
    return "\n".join(lines)


def make_sources(
    args: argparse.Namespace, session: PoliteSession, pixabay_api_key: str | None
) -> list[Source]:
    """Wikimedia Commons always; Pixabay too when PIXABAY_API_KEY is set."""
    sources: list[Source] = [wikimedia.WikimediaCommons(session, args.wikimedia_api_url)]
    if pixabay_api_key:
        sources.append(pixabay.Pixabay(session, pixabay_api_key.strip(), args.pixabay_api_url))
    return sources


def main(argv: Sequence[str] | None = None) -> int:
    """Run the download; 0 unless nothing at all could be fetched because of network errors."""
    settings = load_settings()
    parser = build_parser(settings)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    per_class = FULL_PER_CLASS if args.full else args.per_class
    if per_class < 1:
        parser.error("--per-class must be at least 1")
    try:
        classes = select_classes(load_classes(args.classes_file), args.classes)
    except (ClassesFileError, ValueError) as err:
        parser.error(str(err))
    session = PoliteSession(
        delay=args.delay, retries=args.retries, backoff=args.backoff, max_wait=args.max_wait
    )
    sources = make_sources(args, session, settings.pixabay_api_key)
    names = " and ".join(source.host for source in sources)
    where = f"{len(classes)} classes into {args.images_dir}/"
    print(f"Up to {per_class} photos per class for {where}, from {names}.")
    if len(sources) == 1:
        print("(Set PIXABAY_API_KEY to add Pixabay photos.)")
    runner = Runner(session, sources, args.images_dir)
    try:
        for cls in classes:
            runner.run_class(cls.id, terms_for(cls.id, cls.name), per_class)
    except KeyboardInterrupt:
        print("\nInterrupted: what was downloaded is kept; run again to resume.", file=sys.stderr)
        return 130
    finally:
        session.close()
    summary = runner.summary
    print(format_summary(summary, args.images_dir))
    code = summary.exit_code()
    if code:
        print("Nothing could be downloaded because of network errors (see above).", file=sys.stderr)
    return code
