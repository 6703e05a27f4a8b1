"""`python -m ops.restore ARCHIVE [--force]`: bring a backup back (behind `make restore ARCHIVE=...`).

Run it with the service stopped (the embedded shard must be free): it refuses a store that already holds
photos unless `--force`, rebuilds each collection from the archive's points (the exact vectors, no
re-encoding), writes the data files back, and the same searches then give the same answers.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import tempfile
from pathlib import Path

from core.settings import Settings, load_settings
from core.store import CELLS, IMAGES, CollectionMismatch, StoreUnavailable, VectorStore, open_store
from core.store.server import ServerStore
from ops.archive import ArchiveError, ArchiveReader, Manifest
from ops.backup import NOT_BACKED_UP

log = logging.getLogger(__name__)

BATCH = 256


class RestoreRefused(RuntimeError):
    """The store already holds photos and the restore was not forced."""


def restore_backup(settings: Settings, store: VectorStore, archive: Path, force: bool = False) -> Manifest:
    """Restore every collection and data file of `archive` into `store` and the data folder."""
    reader = ArchiveReader(archive)
    try:
        existing = store.count(IMAGES)
        if existing and not force:
            raise RestoreRefused(
                f"the store already holds {existing} photos; restoring replaces them: add --force "
                "(make restore ARCHIVE=... ARGS=--force)"
            )
        # Cells belong to the photos they were trained on: the archive's, or none (trained again later).
        store.drop_collection(CELLS)
        from_snapshots: list[str] = []
        if isinstance(store, ServerStore) and reader.manifest.extra.get("snapshots", {}).get("collections"):
            from ops.snapshots import restore_snapshots

            from_snapshots = restore_snapshots(store, reader, settings.qdrant_api_key)
        for name, info in reader.manifest.collections.items():
            if name not in from_snapshots:
                store.ensure_collection(name, dict(info["meta"]), recreate=True)
                points = reader.points(name)
                while batch := list(itertools.islice(points, BATCH)):
                    store.upsert(name, batch)
            if store.count(name) != int(info["points"]):
                raise ArchiveError(
                    f"'{name}' holds {store.count(name)} points after the restore, not {info['points']}"
                )
            store.optimize(name)
        for relative, source in reader.data_files():
            if Path(relative).name not in NOT_BACKED_UP:
                _write_atomic(settings.data_dir / relative, source.read())
        return reader.manifest
    finally:
        reader.close()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.restore", description=__doc__)
    parser.add_argument("archive", type=Path, help="a backup written by `make backup`")
    parser.add_argument("--force", action="store_true", help="replace the photos the store holds now")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Restore; exit 0 on success, 1 when the store is busy or down, 2 on a bad archive or a refusal."""
    args = _parser().parse_args(argv)
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    store = open_store(settings)
    try:
        store.ping()
        manifest = restore_backup(settings, store, args.archive, force=args.force)
    except (ArchiveError, RestoreRefused, CollectionMismatch) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except StoreUnavailable as err:
        print(f"error: {err} (stop the service before restoring)", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"restored {args.archive} (written {manifest.created_at}):")
    for name, info in manifest.collections.items():
        print(f"  {name}: {info['points']} points")
    print(f"  data files: {manifest.files}")
    model = manifest.collections.get(IMAGES, {}).get("meta", {}).get("model")
    if model and model != settings.clip_model:
        print(f"note: these photos were encoded with {model}; set CLIP_MODEL={model} before serving them.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
