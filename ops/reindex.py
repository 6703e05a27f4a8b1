"""`python -m ops.reindex --model NAME`: re-encode every photo with another model while search keeps
answering with the current one, then switch at once (behind `make reindex CLIP_MODEL=...`).

1. The new model's collections are built beside the current ones, named after it (`images__<model>`,
   `prompts__<model>`), with the same payloads and the new model's class labels. Every photo is read again
   from the library (its thumbnail when the file is gone) and checked against its stored SHA-256.
2. Killed at any moment (kill -9 included), the next run finds the same collections and encodes only the
   photos they lack: each point is written whole, in one upsert.
3. When they hold every photo, `images` and `prompts` are pointed at them in one atomic step (a Qdrant
   alias swap; the embedded store's pointer file). Inside the service this happens under the search
   service's switch lock, together with the swap to the new model and a fresh query cache, so no answer
   ever mixes a query of one model with the vectors of another.
4. Only then are the old collections dropped.

While the service runs it owns the embedded shard, so the work is handed to it (like `make ingest`). The
service then holds both models in memory until the switch. Afterwards set CLIP_MODEL to the new model
(README, "Re-indexing with another model"), or a restart refuses the collection as a model mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.cells import needs_training, train_cells
from core.classes import load_classes
from core.ids import sha256_hex
from core.images import UnsupportedImage, decode_image
from core.payload import ImagePayload, library_file
from core.settings import Settings, load_settings
from core.store import (
    CELL_FIELD,
    CELLS,
    IMAGES,
    PROMPTS,
    CollectionMismatch,
    PointRecord,
    StoreError,
    StoreUnavailable,
    VectorStore,
    open_store,
    store_backend,
)
from core.thumbnails import thumb_path
from core.zero_shot import ZeroShotClassifier, prompts_fingerprint
from ingest.files import UnreadableFile, max_file_bytes, read_regular_file

if TYPE_CHECKING:
    from PIL import Image

    from core.model import ClipModel
    from search import SearchService

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
SCAN = 256


@dataclass
class ReindexReport:
    """What a run did."""

    model: str
    target: str
    already: int = 0  # encoded by an earlier, interrupted run
    encoded: int = 0
    from_thumbnail: int = 0
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    switched: bool = False
    dropped: list[str] = field(default_factory=list)
    cells: int = 0  # cells trained for the new model (a big library, core/cells.py)
    cells_error: str | None = None  # why they could not be
    seconds: float = 0.0

    def summary(self) -> str:
        """Human summary."""
        lines = [
            f"re-indexed with {self.model} into '{self.target}': encoded {self.encoded}"
            f" (resumed after {self.already} already done), {self.from_thumbnail} from thumbnails,"
            f" left out {len(self.left_out)}, in {self.seconds:.1f} s",
        ]
        if self.switched:
            lines.append(
                f"switched: search now answers with {self.model}; dropped {', '.join(self.dropped) or 'nothing'}"
            )
            lines.append(f"set CLIP_MODEL={self.model} in .env (or the environment) before the next restart")
        if self.cells:
            lines.append(f"text search cells trained for {self.model}: {self.cells:,}")
        if self.cells_error:
            lines.append(f"text search cells not trained ({self.cells_error}): run `make cells`")
        lines += [f"  left out {path}: {why}" for path, why in self.left_out]
        return "\n".join(lines)


class NothingToDo(RuntimeError):
    """The collection is already built with the model asked for."""


def target_name(name: str, model: str, dim: int) -> str:
    """The collection a model's re-index builds for `name`: stable, so a rerun resumes it."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[-40:]
    digest = hashlib.sha256(f"{model}\n{dim}".encode()).hexdigest()[:8]
    return f"{name}__{slug}-{digest}"


def load_model(settings: Settings, model: str) -> ClipModel:
    """The new model, on the configured device and precision."""
    from core.model import ClipModel

    encoder = ClipModel(model, settings.clip_device, settings.clip_precision, settings.torch_threads)
    encoder.warm_up()
    return encoder


def reindex(
    settings: Settings,
    store: VectorStore,
    encoder: ClipModel,
    batch_size: int = 16,
    on_progress: Progress | None = None,
    service: SearchService | None = None,
) -> ReindexReport:
    """Build the new model's collections, switch to them, drop the old ones (see the module docstring).

    `service`: the running search service, switched to `encoder` at the same moment as the store."""
    started = time.perf_counter()
    meta = encoder.identity.as_meta()
    current = store.collection_meta(IMAGES)
    if current is None:
        raise NothingToDo("there is no collection to re-index yet; run `make ingest` instead")
    images_target = target_name(IMAGES, encoder.identity.model, encoder.identity.dim)
    prompts_target = target_name(PROMPTS, encoder.identity.model, encoder.identity.dim)
    report = ReindexReport(model=encoder.identity.model, target=images_target)
    if store.collection_target(IMAGES) == images_target or _same_model(current, meta):
        report.dropped = drop_leftovers(store)
        raise NothingToDo(f"the collection is already built with {encoder.identity.model}")

    classes = load_classes(settings.classes_file)
    fingerprint = prompts_fingerprint(classes, encoder.identity.model)
    classifier = ZeroShotClassifier.from_prompts(classes, encoder.text, encoder.logit_scale)
    store.ensure_collection(prompts_target, meta)
    classifier.save(store, meta, fingerprint, collection=prompts_target)
    store.ensure_collection(images_target, meta)

    left_out: set[str] = set()
    first_pass = True
    while True:  # a last pass picks up photos ingested meanwhile
        done_ids = {p.id for p in store.scroll(images_target)}
        if first_pass:
            report.already = len(done_ids)
            first_pass = False
        todo = [p for p in store.scroll(IMAGES) if p.id not in done_ids and p.id not in left_out]
        if not todo:
            break
        total, progressed = len(done_ids) + len(todo), len(done_ids)
        for batch in _batches(todo, batch_size):
            images, kept = _load_images(settings, batch, encoder.identity.image_size, report)
            left_out |= {p.id for p in batch} - {p.id for p in kept}
            if kept:
                vectors = encoder.image.encode_images(images, batch_size=batch_size)
                points = [
                    PointRecord(p.id, _moved_payload(p.payload) | labels.payload_fields(fingerprint), vector)
                    for p, vector, labels in zip(kept, vectors, classifier.classify(vectors), strict=True)
                ]
                store.upsert(images_target, points)
                report.encoded += len(points)
            progressed += len(batch)
            if on_progress:
                on_progress("encoding", progressed, total)
    _drop_removed(store, images_target)
    store.optimize(images_target)

    old = {store.collection_target(IMAGES), store.collection_target(PROMPTS)}

    def switch_store() -> None:
        store.switch_aliases({IMAGES: images_target, PROMPTS: prompts_target})

    if service is not None:
        service.switch_model(encoder, switch_store)
    else:
        switch_store()
    report.switched = True
    store.drop_collection(CELLS)  # the old model's centroids; a big library gets new ones below
    for name in sorted(old - {images_target, prompts_target}):
        store.drop_collection(name)
        report.dropped.append(name)
    report.dropped += drop_leftovers(store)
    if needs_training(store, settings.cells_min_photos):
        try:  # the switch is done: a failure here leaves text search walking alone, until `make cells`
            report.cells = train_cells(store, progress=on_progress).cells
        except (StoreError, ValueError) as err:
            report.cells_error = str(err)
            log.error("the new model's cells could not be trained (`make cells` tries again): %s", err)
    report.seconds = time.perf_counter() - started
    return report


def _moved_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A photo's payload for the new model's collection: all but its cell, which was the old model's."""
    return {k: v for k, v in payload.items() if k != CELL_FIELD}


def _same_model(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(stored.get(key) == wanted.get(key) for key in ("model", "dim", "image_size"))


def drop_leftovers(store: VectorStore) -> list[str]:
    """Drop re-index collections that nothing answers from (an abandoned run, an old model's)."""
    live = {store.collection_target(IMAGES), store.collection_target(PROMPTS)}
    dropped = []
    for name in store.list_collections():
        ours = name in (IMAGES, PROMPTS) or name.startswith((f"{IMAGES}__", f"{PROMPTS}__"))
        if ours and name not in live:
            store.drop_collection(name)
            dropped.append(name)
    return dropped


def _drop_removed(store: VectorStore, target: str) -> None:
    """Points pruned from the current collection during the run leave the new one too."""
    current = {p.id for p in store.scroll(IMAGES)}
    gone = [p.id for p in store.scroll(target) if p.id not in current]
    for start in range(0, len(gone), SCAN):
        store.delete(target, gone[start : start + SCAN])


def _batches(points: list[PointRecord], size: int) -> Iterator[list[PointRecord]]:
    for start in range(0, len(points), size):
        yield points[start : start + size]


def _load_images(
    settings: Settings, batch: list[PointRecord], image_size: int, report: ReindexReport
) -> tuple[list[Image.Image], list[PointRecord]]:
    """The photos of `batch` decoded, from the library file (checked against the stored SHA-256), else
    from the thumbnail; the others are left out with the reason."""
    images, kept = [], []
    limit = max_file_bytes(settings.max_image_pixels)
    for point in batch:
        payload = ImagePayload.from_stored(point.payload)
        source = None
        try:
            data = read_regular_file(library_file(payload.path, settings.images_dir), limit)
            if not payload.sha256 or sha256_hex(data) == payload.sha256:
                source = data
        except UnreadableFile:
            pass
        if source is None:
            try:
                source = read_regular_file(thumb_path(settings.thumbs_dir, point.id), limit)
                report.from_thumbnail += 1
            except UnreadableFile:
                report.left_out.append((payload.path, "neither the file nor its thumbnail can be read"))
                continue
        try:
            decoded = decode_image(source, settings.max_image_pixels, min_side=2 * image_size)
        except UnsupportedImage as err:
            report.left_out.append((payload.path, err.reason))
            continue
        images.append(decoded.image)
        kept.append(point)
    return images, kept


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.reindex", description=__doc__)
    parser.add_argument("--model", required=True, help="the new CLIP model (hub name or local folder)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="images per forward pass (ENCODE_BATCH_SIZE)"
    )
    parser.add_argument("--no-handoff", action="store_true", help="never hand the work to a running service")
    parser.add_argument("--quiet", action="store_true", help="no progress")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Re-index; exit 0 when switched (or nothing to do), 1 on failure."""
    args = _parser().parse_args(argv)
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    batch_size = args.batch_size or settings.encode_batch_size
    if store_backend(settings).single_process and not args.no_handoff:
        from ingest.handoff import find_service
        from ops.handoff import run_in_service

        running = find_service(settings.data_dir, settings.port)
        if running is not None:
            print(f"A Wonders service is running at {running.url}: handing the re-index to it.")
            body = {"model": args.model, "batch_size": batch_size}
            return run_in_service(running, "reindex", body, not args.quiet)
    from core.model import keep_freed_memory

    keep_freed_memory()
    store = open_store(settings)
    try:
        store.ping()
        try:
            encoder = load_model(settings, args.model)
        except OSError as err:
            print(f"error: cannot load the model {args.model!r}: {err}", file=sys.stderr)
            return 1
        report = reindex(settings, store, encoder, batch_size, None if args.quiet else _print_progress)
    except NothingToDo as err:
        print(str(err))
        return 0
    except (StoreUnavailable, CollectionMismatch) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(report.summary())
    return 0


def _print_progress(phase: str, done: int, total: int) -> None:
    print(f"\r{phase}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
