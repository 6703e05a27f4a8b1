"""The product's verbs, with no web framework: search, classify, image metadata and files, classes, stats.

`SearchService` owns the loaded model and store, their readiness, the class vectors and the text query
cache. The API, the ingest job, the benchmarks and the evaluation call it in-process. In production the
model loads in a background thread (readiness says why it is not ready meanwhile); tests pass a ready
encoder and store.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np

from core.classes import LandmarkClass, load_classes
from core.ids import canonical_point_id
from core.images import UnsupportedImage, decode_image, thumbnail_jpeg
from core.model import ClipModel, load_clip
from core.payload import PHASH_KEY, ImagePayload, library_file
from core.phash import Fingerprint
from core.phash import distance as phash_distance
from core.settings import Settings
from core.store import IMAGES, CollectionMismatch, Hit, StoreUnavailable, VectorStore, open_store
from core.store.base import check_meta
from core.thumbnails import thumb_path, write_thumb
from core.zero_shot import ZeroShotClassifier
from search import diversity, refine, results
from search.cache import QueryCache
from search.duplicates import MAX_BITS as DUPLICATE_BITS
from search.duplicates import DuplicateBook, DuplicatePage, book_path, listing
from search.errors import (
    BadQuery,
    EmptyQuery,
    FileMissing,
    ModelMismatch,
    NotReady,
    SearchError,
    StoreDown,
    TooManyExamples,
    UnknownClass,
    UnknownImage,
    UnsupportedUpload,
)
from search.query import (
    DEFAULT_K,
    MAX_EXAMPLES,
    MAX_K,
    MAX_WEIGHT,
    Query,
    StoredTerm,
    TextTerm,
    UploadTerm,
)

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

STORE_DOWN_MESSAGE = "The vector store is not reachable right now; retry soon."


def store_calls(method: Callable[P, R]) -> Callable[P, R]:
    """A store outage inside a verb is answered as the search layer's StoreDown."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except StoreUnavailable as err:
            log.warning("store unavailable: %s", err)
            raise StoreDown(STORE_DOWN_MESSAGE) from None

    return wrapper


class Readiness:
    """Whether queries can be answered, and if not, why (a stable code and a message)."""

    def __init__(self, ready: bool, code: str, message: str) -> None:
        self.ready = ready
        self.code = code
        self.message = message


class SearchService:
    """Everything a request needs; see the module docstring."""

    # Longer queries are cut before tokenizing: far beyond CLIP's 77 tokens, which truncation cuts anyway.
    MAX_QUERY_CHARS = 1000
    # The stored collection's model is re-read at most this often (a server round trip per check).
    MISMATCH_CHECK_S = 30.0

    def __init__(
        self, settings: Settings, encoder: ClipModel | None = None, store: VectorStore | None = None
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.store = store
        self.started_at = time.time()
        self.load_error: str | None = None
        self.cache = QueryCache(settings.query_cache_size)
        self._classifier: ZeroShotClassifier | None = None
        self._classifier_lock = threading.Lock()
        self._loader: threading.Thread | None = None
        self._mismatch: str | None = None
        self._mismatch_checked_at = float("-inf")
        self._book: DuplicateBook | None = None

    # -- loading and readiness ---------------------------------------------------------------------
    def load_in_background(self) -> None:
        """Load and warm the model and open the store in a thread; readiness reports progress."""
        self._loader = threading.Thread(target=self._load, name="wonders-loader", daemon=True)
        self._loader.start()

    def _load(self) -> None:
        try:
            if self.store is None:
                self.store = open_store(self.settings)
            if self.encoder is None:
                encoder = load_clip(self.settings)
                encoder.warm_up()
                self.encoder = encoder
            log.info(
                "model ready: %s (%s, %s)",
                self.encoder.model_name,
                self.encoder.device,
                self.encoder.precision,
            )
            self.prepare()
            settle_loaded_objects()
        except Exception as err:  # keep serving health/readiness with the reason
            log.exception("loading failed")
            self.load_error = f"{type(err).__name__}: {err}"

    def prepare(self) -> None:
        """Read the class vectors now, so the first query does not; problems are left to readiness."""
        try:
            self.classifier()
        except StoreUnavailable as err:
            log.warning("store not reachable yet: %s", err)
        except SearchError as err:
            log.error("%s", err.message)

    def wait_loaded(self, timeout: float | None = None) -> None:
        """Block until the background load ends (tests and benchmarks)."""
        if self._loader is not None:
            self._loader.join(timeout)

    def readiness(self) -> Readiness:
        """Ready when the model is loaded and the store answers.

        Anyone may ask, so the reasons name no server paths, addresses or exception texts: those are
        in the server log."""
        if self.load_error:
            return Readiness(False, "load_failed", "The service failed to start; the server log says why.")
        if self.encoder is None or self.store is None:
            return Readiness(False, "not_ready", "The model is still loading; retry in a few seconds.")
        try:
            self.store.ping()
            mismatch = self.collection_mismatch(force=True)
        except StoreUnavailable as err:
            log.warning("store unavailable: %s", err)
            return Readiness(False, "store_unavailable", STORE_DOWN_MESSAGE)
        if mismatch:
            return Readiness(False, "model_mismatch", mismatch)
        return Readiness(True, "ready", "ready")

    def require_loaded(self) -> tuple[ClipModel, VectorStore]:
        """The encoder and store once loaded, even when the collection needs rebuilding (for ingest)."""
        if self.encoder is None or self.store is None:
            state = self.readiness()
            raise NotReady(state.message, code=state.code)
        return self.encoder, self.store

    def require_ready(self) -> tuple[ClipModel, VectorStore]:
        """The encoder and store, or NotReady / ModelMismatch while they are not there or do not match."""
        encoder, store = self.require_loaded()
        mismatch = self.collection_mismatch()
        if mismatch:
            raise ModelMismatch(mismatch)
        return encoder, store

    def collection_mismatch(self, force: bool = False) -> str | None:
        """Why the stored collection cannot be searched with this model, or None when it can.

        A collection built by another model or embedding size is never mixed with this one's vectors.
        Checked at most every MISMATCH_CHECK_S seconds (a server round trip), or now with `force`."""
        if self.encoder is None or self.store is None:
            return None
        now = time.monotonic()
        if force or now - self._mismatch_checked_at > self.MISMATCH_CHECK_S:
            stored = self.store.collection_meta(IMAGES)
            try:
                if stored is not None:
                    check_meta(IMAGES, stored, self.encoder.identity.as_meta())
                self._mismatch = None
            except CollectionMismatch as err:
                public = hide_paths(str(err))
                if public != self._mismatch:
                    log.error("%s", err)  # the full text, paths included, once
                self._mismatch = public
            self._mismatch_checked_at = now
        return self._mismatch

    # -- classes -----------------------------------------------------------------------------------
    def classifier(self) -> ZeroShotClassifier:
        """The stored class vectors (what ingest labelled with), else built from the classes file."""
        with self._classifier_lock:
            if self._classifier is None:
                encoder, store = self.require_ready()
                stored = ZeroShotClassifier.load(store)
                if stored is None:
                    classes = load_classes(self.settings.classes_file)
                    stored = ZeroShotClassifier.from_prompts(classes, encoder.text, encoder.logit_scale)
                self._classifier = stored
            return self._classifier

    def reload_classifier(self) -> None:
        """Forget the class vectors (and the model check) so the next request reads the store again."""
        with self._classifier_lock:
            self._classifier = None
        self._mismatch_checked_at = float("-inf")

    def class_by_id(self, class_id: str | None) -> LandmarkClass | None:
        """The class with this id, or None."""
        return self.classifier().by_id(class_id) if class_id else None

    def check_class(self, class_id: str | None) -> str | None:
        """A known class id (None for no filter), or UnknownClass naming the known ones."""
        if class_id is None or class_id == "":
            return None
        if self.class_by_id(class_id) is None:
            known = ", ".join(c.id for c in self.classifier().classes)
            raise UnknownClass(f"Unknown class '{class_id[:64]}'. Known classes: {known}.")
        return class_id

    # -- the verbs ---------------------------------------------------------------------------------
    @store_calls
    def search(self, query: Query) -> results.Page:
        """One page of the photos nearest to what the query is about (its examples combined by
        `search/refine.py`; with `diverse`, reordered by MMR, `search/diversity.py`)."""
        started = time.perf_counter()
        check_examples(query)
        _, store = self.require_ready()
        label = self.check_class(query.filters.label)
        vector, exclude = self._query_vector(query)
        k, offset = query.page.k, query.page.offset
        if query.diverse:
            hits = self._diverse_hits(store, vector, k + 1 + offset, label, query, exclude)[offset:]
        elif len(exclude) > 1:
            # Several ids are left out here, not by the engine: a filter of more than one id makes Qdrant
            # search several times slower, and it fetches `offset` results before a page anyway.
            nearest = store.query(
                IMAGES,
                vector,
                limit=offset + k + 1 + len(exclude),
                label=label,
                min_score=query.filters.min_score,
            )
            hits = [h for h in nearest if h.id not in exclude][offset : offset + k + 1]
        else:
            # One extra result tells whether a next page exists, so next_offset is None on the last page.
            hits = store.query(
                IMAGES,
                vector,
                limit=k + 1,
                offset=offset,
                label=label,
                min_score=query.filters.min_score,
                exclude_id=exclude[0] if exclude else None,
            )
        return results.page(hits, k, offset, _ms_since(started), self.class_by_id)

    def _diverse_hits(
        self,
        store: VectorStore,
        vector: np.ndarray,
        wanted: int,
        label: str | None,
        query: Query,
        exclude: list[str],
    ) -> list[Hit]:
        """The first `wanted` results in MMR order, chosen from an oversampled set of nearest ones."""
        pool = store.query(
            IMAGES,
            vector,
            limit=diversity.pool_size(wanted) + len(exclude),
            label=label,
            min_score=query.filters.min_score,
        )
        pool = [h for h in pool if h.id not in exclude]
        if not pool:
            return []
        stored = {p.id: p.vector for p in store.retrieve(IMAGES, [h.id for h in pool], with_vectors=True)}
        pool = [h for h in pool if stored.get(h.id) is not None]
        vectors = np.stack([np.asarray(stored[h.id], dtype=np.float32) for h in pool])
        prints = [Fingerprint.from_stored(h.payload.get(PHASH_KEY)) for h in pool]

        def same(i: int, j: int) -> bool:
            a, b = prints[i], prints[j]
            return a is not None and b is not None and phash_distance(a, b) <= DUPLICATE_BITS

        order = diversity.mmr_order(np.array([h.score for h in pool]), vectors, wanted, same=same)
        return [pool[i] for i in order]

    def _query_vector(self, query: Query) -> tuple[np.ndarray, list[str]]:
        """The query vector, and the ids to leave out of the answer (the stored photos it is made of)."""
        examples = query.all_examples
        stored_ids = [_point_id(e.term.point_id) for e in examples if isinstance(e.term, StoredTerm)]
        stored = self.stored_vectors(stored_ids) if stored_ids else {}
        vectors = []
        for example in examples:
            term = example.term
            if isinstance(term, TextTerm):
                vectors.append(self.text_vector(term.text))
            elif isinstance(term, UploadTerm):
                vectors.append(self.upload_vector(term.data))
            elif isinstance(term, StoredTerm):
                vectors.append(stored[_point_id(term.point_id)])
            else:
                raise TypeError(f"unknown query term {type(term).__name__}")
        if len(vectors) == 1 and examples[0].weight > 0:
            return vectors[0], stored_ids
        return refine.combine(vectors, [e.signed_weight for e in examples]), stored_ids

    def text_vector(self, text: str) -> np.ndarray:
        """The text's embedding, from the cache when it was asked before."""
        key = normalised_text(text)
        encoder, _ = self.require_ready()
        vector = self.cache.get(key)
        if vector is None:
            vector = encoder.text.encode_texts([key])[0]
            self.cache.put(key, vector)
        return vector

    def upload_vector(self, data: bytes) -> np.ndarray:
        """The embedding of an uploaded photo (decoded in memory, never stored)."""
        encoder, _ = self.require_ready()
        decoded = self._decode_upload(data, 2 * encoder.identity.image_size)
        vector: np.ndarray = encoder.image.encode_images([decoded])[0]
        return vector

    def stored_vector(self, point_id: str) -> np.ndarray:
        """The stored vector of a photo of the library."""
        return self.stored_vectors([_point_id(point_id)])[_point_id(point_id)]

    def stored_vectors(self, point_ids: list[str]) -> dict[str, np.ndarray]:
        """The stored vectors of photos of the library, in one store call; UnknownImage if one is missing."""
        _, store = self.require_ready()
        found = {
            p.id: np.asarray(p.vector, dtype=np.float32)
            for p in store.retrieve(IMAGES, list(dict.fromkeys(point_ids)), with_vectors=True)
            if p.vector is not None
        }
        if any(i not in found for i in point_ids):
            raise UnknownImage("No image with this id.")
        return found

    @store_calls
    def duplicates(self, k: int, offset: int) -> DuplicatePage:
        """One page of groups of the same photo (search/duplicates.py)."""
        _, store = self.require_ready()
        return listing(store, self._duplicate_book(), k, offset)

    @store_calls
    def not_duplicate(self, representative: str, member: str) -> None:
        """Remember that `member` is not a duplicate of the group's `representative`."""
        self.require_ready()
        book = self._duplicate_book()
        book.reload()
        if not book.mark_distinct(_point_id(representative), _point_id(member)):
            raise UnknownImage("This photo is not in this group of duplicates.")
        book.save()

    def _duplicate_book(self) -> DuplicateBook:
        with self._classifier_lock:
            if self._book is None:
                self._book = DuplicateBook(book_path(self.settings.data_dir))
            return self._book

    @store_calls
    def classify(self, data: bytes) -> results.ClassifyAnswer:
        """Which class an uploaded photo shows: label, confidence and the top 3 (CLIP's logit scale)."""
        started = time.perf_counter()
        encoder, _ = self.require_ready()
        decoded = self._decode_upload(data, 2 * encoder.identity.image_size)
        vector = encoder.image.encode_images([decoded])
        best = self.classifier().classify(vector)[0]
        return results.ClassifyAnswer(
            label=results.ClassLabel.of(best.best.cls, best.best.cls.id),
            confidence=round(best.best.confidence, 6),
            top3=[results.scored(s.cls, s.cls.id, round(s.confidence, 6)) for s in best.top3],
            took_ms=_ms_since(started),
        )

    @store_calls
    def image(self, point_id: str) -> results.ImageRecord:
        """Everything stored about one photo."""
        _, store = self.require_ready()
        found = store.retrieve(IMAGES, [_point_id(point_id)])
        if not found:
            raise UnknownImage("No image with this id.")
        return results.image_record(found[0].id, found[0].payload, self.class_by_id)

    @store_calls
    def image_file(self, point_id: str) -> Path:
        """The library file of a stored photo."""
        _, store = self.require_ready()
        found = store.retrieve(IMAGES, [_point_id(point_id)])
        if not found:
            raise UnknownImage("No image with this id.")
        path = library_file(ImagePayload.from_stored(found[0].payload).path, self.settings.images_dir)
        if not path.is_file():
            raise FileMissing("The image is indexed but its file is no longer in the library.")
        return path

    @store_calls
    def thumbnail(self, point_id: str) -> Path:
        """The JPEG thumbnail of a stored photo, made from its file when it is missing."""
        point_id = _point_id(point_id)
        settings = self.settings
        path = thumb_path(settings.thumbs_dir, point_id)
        if path.is_file():
            _, store = self.require_ready()
            if not store.retrieve(IMAGES, [point_id]):  # only for ids in the collection
                raise UnknownImage("No image with this id.")
            return path
        source = self.image_file(point_id)
        try:
            decoded = decode_image(source, settings.max_image_pixels, min_side=settings.thumb_size)
        except (UnsupportedImage, OSError):
            raise FileMissing("The image's file can no longer be decoded.") from None
        return write_thumb(settings.thumbs_dir, point_id, thumbnail_jpeg(decoded.image, settings.thumb_size))

    @store_calls
    def classes(self) -> list[results.ClassInfo]:
        """The classes with names, prompts and how many photos carry each."""
        _, store = self.require_ready()
        known = self.classifier().classes
        counts = store.label_counts(IMAGES, [c.id for c in known])
        return [results.ClassInfo(c.id, c.name, c.name_ru, list(c.prompts), counts[c.id]) for c in known]

    @store_calls
    def stats(self) -> results.Stats:
        """Point count, model, embedding size, counts per class, the last cross-check and the limits."""
        encoder, store = self.require_ready()
        known = self.classifier().classes
        collection = store.stats(IMAGES)
        settings = self.settings
        return results.Stats(
            points=store.count(IMAGES),
            indexed_vectors=collection.indexed_vectors,
            model=encoder.model_name,
            dim=encoder.dim,
            device=encoder.device,
            precision=encoder.precision,
            store="embedded" if settings.embedded else "server",
            classes=store.label_counts(IMAGES, [c.id for c in known]),
            crosscheck=_read_json(settings.crosscheck_report),
            query_cache={"hits": self.cache.hits, "misses": self.cache.misses},
            limits={"max_upload_mb": settings.max_upload_mb, "max_k": MAX_K, "default_k": DEFAULT_K},
        )

    def _decode_upload(self, data: bytes, min_side: int) -> Any:
        """An uploaded photo decoded to RGB, shrunk while decoding to what the model needs."""
        try:
            return decode_image(data, self.settings.max_image_pixels, min_side=min_side).image
        except UnsupportedImage as err:
            raise UnsupportedUpload(
                f"The upload is not a decodable image: {err.reason}.", details={"reason": err.reason}
            ) from None


def check_examples(query: Query) -> None:
    """Refuse, before any work, too many examples, a bad weight or an empty text."""
    examples = query.all_examples
    if len(examples) > MAX_EXAMPLES:
        raise TooManyExamples(f"A query combines at most {MAX_EXAMPLES} examples.")
    for example in examples:
        if not 0 < example.weight <= MAX_WEIGHT:
            raise BadQuery(f"An example's weight must be above 0 and at most {MAX_WEIGHT:g}.")
        if isinstance(example.term, TextTerm):
            normalised_text(example.term.text)


def normalised_text(text: str) -> str:
    """The query text as encoded and cached: valid UTF-8, whitespace collapsed, at most MAX_QUERY_CHARS.

    An empty result is refused with EmptyQuery."""
    # Lone surrogates (valid in JSON strings, "\ud800") are no text a tokenizer can take.
    text = text.encode("utf-8", "replace").decode("utf-8")
    key = " ".join(text.split())[: SearchService.MAX_QUERY_CHARS]
    if not key:
        raise EmptyQuery("Type something to search for.")
    return key


def _point_id(text: str) -> str:
    """The canonical id, or UnknownImage for anything that is not one."""
    point_id = canonical_point_id(text)
    if point_id is None:
        raise UnknownImage("No image with this id.")
    return point_id


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return result
    except (OSError, ValueError):
        return None


def settle_loaded_objects() -> None:
    """Move everything loaded so far out of the garbage collector's sight (`gc.freeze`).

    The model, the libraries and the app live as long as the process: with ViT-L/14 that is about
    500,000 objects, which a full collection walks in ~260 ms on this project's reference CPU, stalling
    every request thread to find nothing. Frozen, they are skipped; objects made later are collected
    as before. Health and readiness requests in flight at that moment are frozen too, so a reference
    cycle among their objects is never collected: a few kilobytes, once."""
    gc.collect()
    gc.freeze()


def hide_paths(text: str) -> str:
    """`text` with every absolute path cut to its last part, for messages anyone may read."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) + "…/" + m.group(2).rstrip("/").rsplit("/", 1)[-1], text)


_ABSOLUTE_PATH = re.compile(r"(^|[\s'\"(=])(/[^\s'\"]+)")
