"""Search with examples and near-duplicates at scale, in-process through the search layer.

One embedded store holds `count` CLIP-like vectors (bench/store.py) of the model's size, each with a
synthetic 256-bit perceptual fingerprint; 1 % of them are planted near-copies of another point (the
vector moved a little, a few hash bits flipped). Measured:

- a query with 3 positive and 2 negative examples (2 stored photos and a text toward, a stored photo and
  a text away, the texts and the photos' vectors already in the cache) against a plain text search with
  a cached text. The target's case is the UI's flow: the photos are results of that plain search, on
  screen ("more like this" on two, "less like this" on a third), so each sample is the plain search, then
  its refinement. Also reported: the same query with three photos from anywhere in the library (unrelated
  to each other and to the text: their sum lies far from every photo, a costlier walk of the graph), a
  diverse (MMR) text search and a plain "more like this";
- the duplicate check of the whole store (`DuplicateFinder.check_all`: one HNSW search per photo), its
  time and the process's resident memory above where it started (sampled while it runs), and how many
  planted copies it grouped;
- per new photo at ingest: hashing a decoded photo (core/phash.py) and `check_new` for one point.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.query import SUBJECTS
from bench.store import clip_like_vectors
from bench.util import median, percentile, ratio


def _rss_mib() -> float:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _PeakRss:
    """The highest resident memory seen while the block runs (sampled every 20 ms)."""

    def __enter__(self) -> _PeakRss:
        self.start = _rss_mib()
        self.peak = self.start
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, _rss_mib())

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


def _hashes(rng: np.random.Generator, n: int) -> list[int]:
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    return [int.from_bytes(row.tobytes(), "big") for row in raw]


def _flip(rng: np.random.Generator, value: int, bits: int) -> int:
    for bit in rng.choice(256, size=bits, replace=False):
        value ^= 1 << int(bit)
    return value


def _build(encoder: Any, workdir: Path, count: int) -> tuple[Any, Any, list[str], dict[str, str]]:
    """The settings, the store filled with `count` points, their ids, and planted copy -> original."""
    from core.payload import ImagePayload
    from core.phash import CROPS, Fingerprint
    from core.settings import Settings
    from core.store import IMAGES, PointRecord
    from core.store.embedded import EmbeddedStore

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        clip_model=encoder.model_name,
        images_dir=workdir / "refine-images",
        data_dir=workdir / "refine-data",
        qdrant_url=None,
    )
    store = EmbeddedStore(settings.shard_dir, hnsw_ef=settings.hnsw_ef)
    store.ensure_collection(IMAGES, encoder.identity.as_meta())
    rng = np.random.default_rng(7)
    copies = count // 100
    vectors, _ = clip_like_vectors(count - copies, dim=encoder.dim)
    originals = rng.choice(len(vectors), size=copies, replace=False)
    moved = vectors[originals] + rng.normal(0, 0.01, size=(copies, encoder.dim)).astype(np.float32)
    vectors = np.concatenate([vectors, moved / np.linalg.norm(moved, axis=1, keepdims=True)])
    per_photo = 1 + len(CROPS)
    hashes = _hashes(rng, (count - copies) * per_photo)
    prints = [
        Fingerprint(hashes[i * per_photo], tuple(hashes[i * per_photo + 1 : (i + 1) * per_photo]))
        for i in range(count - copies)
    ]
    for original in originals:
        source = prints[int(original)]
        prints.append(
            Fingerprint(_flip(rng, source.whole, 12), tuple(_flip(rng, c, 12) for c in source.crops))
        )
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(count)]
    planted = {ids[count - copies + n]: ids[int(o)] for n, o in enumerate(originals)}
    batch = []
    for i in range(count):
        payload = ImagePayload(path=f"p/{i}.jpg", bytes=100_000 + i, phash=tuple(prints[i].to_stored()))
        batch.append(PointRecord(ids[i], payload.to_stored(), vectors[i]))
        if len(batch) == 1000:
            store.upsert(IMAGES, batch)
            batch = []
    store.upsert(IMAGES, batch)
    store.optimize(IMAGES)
    return settings, store, ids, planted


def _refined(text: str, against: str, photos: list[str]) -> Any:
    """3 positive examples (the text and two photos) and 2 negative ones (a text and a photo)."""
    from search import Query, StoredTerm, TextTerm
    from search.query import Example

    return Query(
        TextTerm(text),
        examples=(
            Example(StoredTerm(photos[0])),
            Example(StoredTerm(photos[1])),
            Example(TextTerm(against), negative=True),
            Example(StoredTerm(photos[2]), negative=True),
        ),
    )


def _timed(call: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = call(*args)
    return time.perf_counter() - started, answer


def _queries(service: Any, ids: list[str], samples: int) -> dict[str, Any]:
    from search import Query, StoredTerm, TextTerm

    # A different text for every sample (a repeated vector would walk a hot HNSW path), all in the cache.
    texts = [f"{subject}, photo {i}" for i, subject in enumerate(SUBJECTS * (1 + (2 * samples + 6) // 12))]
    for text in texts:
        service.text_vector(text)  # in the cache, as the target says
    pick = random.Random(3)
    anywhere = [pick.sample(ids, 3) for _ in range(samples + 3)]
    for chosen in anywhere:
        service.stored_vectors(chosen)  # photos seen before: their vectors were fetched once already
    times: dict[str, list[float]] = {
        k: [] for k in ("plain", "refined", "anywhere", "diverse", "combine", "similar")
    }
    for i, chosen in enumerate(anywhere):
        text, against = texts[2 * i], texts[2 * i + 1]
        plain, page = _timed(service.search, Query(TextTerm(text)))
        # The UI's flow: "more like this" on two results on screen, "less like this" on a third, and
        # words to avoid. The page's photos came with their vectors' ids; fetched once, as the UI does.
        shown = ([r.id for r in page.results] + chosen)[:3]
        service.stored_vectors(shown)
        refined, _ = _timed(service.search, _refined(text, against, shown))
        elsewhere, _ = _timed(service.search, _refined(text, against, chosen))
        diverse, _ = _timed(service.search, Query(TextTerm(text), diverse=True))
        combine, _ = _timed(service._query_vector, _refined(text, against, shown))
        similar, _ = _timed(service.search, Query(StoredTerm(shown[0])))  # "more like this" alone
        if i >= 3:  # the first samples warm the caches
            for key, value in zip(times, (plain, refined, elsewhere, diverse, combine, similar), strict=True):
                times[key].append(value)
    p50 = {key: median(values) for key, values in times.items()}
    return {
        "samples": samples,
        "plain_text_p50_ms": round(p50["plain"] * 1000, 3),
        "examples_3_2_p50_ms": round(p50["refined"] * 1000, 3),
        "examples_vs_plain": round(ratio(p50["refined"], p50["plain"]), 3),
        "examples_p95_ms": round(percentile(times["refined"], 95) * 1000, 3),
        "examples_anywhere_p50_ms": round(p50["anywhere"] * 1000, 3),
        "examples_anywhere_vs_plain": round(ratio(p50["anywhere"], p50["plain"]), 3),
        "diverse_text_p50_ms": round(p50["diverse"] * 1000, 3),
        "combine_p50_ms": round(p50["combine"] * 1000, 3),
        "plain_plus_combine_vs_plain": round(ratio(p50["plain"] + p50["combine"], p50["plain"]), 3),
        "similar_p50_ms": round(p50["similar"] * 1000, 3),
        "examples_vs_similar": round(ratio(p50["refined"], p50["similar"]), 3),
    }


def _duplicates(settings: Any, store: Any, ids: list[str], planted: dict[str, str]) -> dict[str, Any]:
    from search.duplicates import DuplicateBook, DuplicateFinder, book_path

    book = DuplicateBook(book_path(settings.data_dir))
    finder = DuplicateFinder(store, book)
    with _PeakRss() as memory:
        t = time.perf_counter()
        found = finder.check_all()
        seconds = time.perf_counter() - t
    grouped = sum(
        1
        for copy, original in planted.items()
        if book.rep_of.get(copy) == original or book.rep_of.get(original) == copy
    )
    wrong = sum(
        1 for member, rep in book.rep_of.items() if planted.get(member) != rep and planted.get(rep) != member
    )
    return {
        "points": len(ids),
        "check_all_s": round(seconds, 2),
        "per_photo_ms": round(seconds / len(ids) * 1000, 3),
        "peak_extra_rss_mib": round(memory.peak - memory.start, 1),
        "grouped": found,
        "planted": len(planted),
        "planted_grouped": grouped,
        "wrongly_grouped": wrong,
    }


def _per_new_photo(store: Any, settings: Any, ids: list[str], new_photos: int) -> dict[str, Any]:
    from bench.photos import photo_jpeg
    from core.images import decode_image
    from core.phash import fingerprint
    from core.store import IMAGES, PointRecord
    from search.duplicates import DuplicateBook, DuplicateFinder, book_path

    decoded = [
        decode_image(photo_jpeg(90 + i, (3000, 2000)), settings.max_image_pixels, min_side=448).image
        for i in range(5)
    ]
    hashing = []
    for image in decoded * 4:
        t = time.perf_counter()
        fingerprint(image)
        hashing.append(time.perf_counter() - t)
    book = DuplicateBook(book_path(settings.data_dir))
    finder = DuplicateFinder(store, book)
    sources = store.retrieve(IMAGES, ids[:new_photos], with_vectors=True)
    fresh = [
        PointRecord(f"10000000-0000-4000-8000-{i:012d}", p.payload, p.vector) for i, p in enumerate(sources)
    ]
    store.upsert(IMAGES, fresh)
    checks = []
    for point in fresh:
        t = time.perf_counter()
        finder.check_new([point.id])
        checks.append(time.perf_counter() - t)
    return {
        "hash_p50_ms": round(median(hashing) * 1000, 2),
        "check_p50_ms": round(median(checks) * 1000, 2),
        "check_p95_ms": round(percentile(checks, 95) * 1000, 2),
        "new_photos": len(fresh),
    }


def run(encoder: Any, workdir: Path, count: int, samples: int = 60, new_photos: int = 20) -> dict[str, Any]:
    """The refine section (see the module docstring)."""
    from search import SearchService

    t = time.perf_counter()
    settings, store, ids, planted = _build(encoder, workdir, count)
    build_s = time.perf_counter() - t
    try:
        service = SearchService(settings, encoder, store)
        result: dict[str, Any] = {"vectors": count, "dim": encoder.dim, "build_s": round(build_s, 1)}
        result["queries"] = _queries(service, ids, samples)
        result["duplicates"] = _duplicates(settings, store, ids, planted)
        result["per_new_photo"] = _per_new_photo(store, settings, ids, new_photos)
        return result
    finally:
        store.close()
