"""`python -m ops.backup [--archive PATH]`: one archive of everything a restore needs (behind `make backup`).

While the service runs it owns the embedded shard, so the backup is handed to it (like `make ingest`);
otherwise, and with a Qdrant server, it runs here. The archive format is in `ops/archive.py`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from core.settings import Settings, load_settings
from core.store import CELLS, IMAGES, PROMPTS, StoreUnavailable, VectorStore, open_store, store_backend
from core.store.server import ServerStore
from ops.archive import DATA_DIR, ArchiveWriter, Manifest

log = logging.getLogger(__name__)

COLLECTIONS = (IMAGES, PROMPTS, CELLS)  # cells only where the library has them (core/cells.py)
# Files of the data folder that belong to one running service, not to the library.
NOT_BACKED_UP = {"admin.token"}
Progress = Callable[[str, int, int], None]


def default_archive(settings: Settings) -> Path:
    """backups/wonders-<UTC time>.tar under BACKUP_DIR."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return (settings.backup_dir / f"wonders-{stamp}.tar").resolve()


def data_files(settings: Settings, archive: Path) -> list[Path]:
    """The data folder's files to keep: everything but the shards, the service's token, temporary files
    and backups that happen to lie inside it."""
    root = settings.data_dir
    if not root.is_dir():
        return []
    skip_dirs = [settings.shard_dir.resolve(), settings.backup_dir.resolve()]
    found = []
    for path in sorted(root.rglob("*")):
        resolved = path.resolve()
        if not path.is_file() or path.is_symlink() or resolved == archive.resolve():
            continue
        if any(resolved.is_relative_to(d) for d in skip_dirs):
            continue
        if path.name in NOT_BACKED_UP or path.name.endswith((".tmp", ".partial")):
            continue
        found.append(path)
    return found


def write_backup(
    settings: Settings, store: VectorStore, archive: Path, on_progress: Progress | None = None
) -> Manifest:
    """Write the archive: the points of every collection first, then the data files (each point's
    thumbnail was written before the point, so it is there)."""
    totals = {name: store.count(name) for name in COLLECTIONS}
    total = sum(totals.values())
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if on_progress and (done % 256 == 0 or done == total):
            on_progress("points", done, max(total, done))

    manifest = Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        store=settings.store_kind,
    )
    writer = ArchiveWriter(archive)
    try:
        for name in COLLECTIONS:
            meta = store.collection_meta(name)
            if meta is None:
                continue
            writer.add_bytes(f"collections/{name}/meta.json", _json(meta))
            points = writer.add_points(name, store.scroll(name, with_vectors=True), step)
            manifest.collections[name] = {"meta": meta, "points": points}
        if isinstance(store, ServerStore):
            from ops.snapshots import add_snapshots

            names = list(manifest.collections)
            manifest.extra["snapshots"] = add_snapshots(store, names, writer, settings.qdrant_api_key)
        files = data_files(settings, archive)
        for index, path in enumerate(files, 1):
            relative = path.relative_to(settings.data_dir).as_posix()
            manifest.files += writer.add_file(f"{DATA_DIR}/{relative}", path)
            if on_progress and (index % 256 == 0 or index == len(files)):
                on_progress("files", index, len(files))
        writer.finish(manifest)
    except BaseException:
        writer.abort()
        raise
    return manifest


def summary(manifest: Manifest, archive: Path) -> str:
    """One line per collection, then the files."""
    lines = [f"backup written: {archive}"]
    for name, info in manifest.collections.items():
        lines.append(f"  {name}: {info['points']} points (model {info['meta'].get('model')})")
    lines.append(f"  data files: {manifest.files} (thumbnails, reports)")
    return "\n".join(lines)


def _json(data: object) -> bytes:
    import json

    return json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.backup", description=__doc__)
    parser.add_argument(
        "--archive", type=Path, help="where to write it (default: BACKUP_DIR/wonders-<time>.tar)"
    )
    parser.add_argument("--no-handoff", action="store_true", help="never hand the work to a running service")
    parser.add_argument("--quiet", action="store_true", help="no progress")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Write a backup; exit 0 on success, 1 when the store cannot be read."""
    args = _parser().parse_args(argv)
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    archive = (args.archive or default_archive(settings)).resolve()
    if store_backend(settings).single_process and not args.no_handoff:
        from ingest.handoff import find_service
        from ops.handoff import run_in_service

        service = find_service(settings.data_dir, settings.port)
        if service is not None:
            print(f"A Wonders service is running at {service.url}: handing the backup to it.")
            return run_in_service(service, "backup", {"archive": str(archive)}, not args.quiet)
    store = open_store(settings)
    try:
        store.ping()
        manifest = write_backup(settings, store, archive, None if args.quiet else _print_progress)
    except StoreUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(summary(manifest, archive))
    return 0


def _print_progress(phase: str, done: int, total: int) -> None:
    print(f"\r{phase}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
