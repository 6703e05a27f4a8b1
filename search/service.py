"""The product's verbs, with no web framework: search, classify, image metadata and files, classes, stats.

`SearchService` owns the loaded model and store, their readiness, the class vectors and the text query
cache. The API, the ingest job, the benchmarks and the evaluation call it in-process. In production the
model loads in a background thread (readiness says why it is not ready meanwhile); tests pass a ready
encoder and store.
"""

from __future__ import annotations

import functools
import gc
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
from PIL import Image

from core.classes import OTHER, LandmarkClass
from core.decode_budget import DecodeBudget, DecodeBusy
from core.ids import canonical_point_id
from core.images import UnsupportedImage, decode_image, thumbnail_jpeg
from core.model import ClipModel, ModelUnavailable, TextTower, load_clip
from core.payload import PHASH_KEY, ImagePayload
from core.phash import Fingerprint
from core.phash import distance as phash_distance
from core.settings import Settings
from core.store import (
    IMAGES,
    CollectionMismatch,
    CollectionMissing,
    CollectionStats,
    Hit,
    StoreDamaged,
    StoreError,
    StoreUnavailable,
    VectorStore,
    open_store,
)
from core.store.base import check_meta
from core.thumbnails import thumb_path, write_thumb
from core.zero_shot import ZeroShotClassifier, classifier_spec
from search import cells, diversity, refine, results
from search.cache import QueryCache
from search.cells import StoredCells
from search.duplicates import MAX_BITS as DUPLICATE_BITS
from search.duplicates import DuplicateBook, DuplicatePage, book_path, listing
from search.errors import (
    BadQuery,
    Busy,
    EmptyQuery,
    FileMissing,
    ModelMismatch,
    NotReady,
    SearchError,
    StoreBroken,
    StoreDown,
    TooManyExamples,
    UnknownClass,
    UnknownImage,
    UnsupportedUpload,
)
from search.files import ServedFile, VerifiedFiles, open_indexed
from search.query import DEFAULT_K, MAX_EXAMPLES, MAX_K, MAX_WEIGHT, Query, StoredTerm, TextTerm, UploadTerm
from search.switch import ReadWriteLock
from search.text_router import TextEncoder
from search.text_towers import Encoded, TextTowers, TowerState

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

STORE_DOWN_MESSAGE = "The vector store is not reachable right now; retry soon."
# Page.reason when nothing is indexed yet: the query is not to blame, the library is empty.
EMPTY_LIBRARY = "empty_library"


def store_calls(method: Callable[P, R]) -> Callable[P, R]:
    """A store outage inside a verb is answered as the search layer's StoreDown. The verb runs under the
    service's switch lock (search/switch.py), so a model switch never happens in the middle of it."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        service = args[0]
        assert isinstance(service, SearchService)
        try:
            with service.switching.reading():
                return method(*args, **kwargs)
        except StoreUnavailable as err:
            log.warning("store unavailable: %s", err)
            raise StoreDown(STORE_DOWN_MESSAGE) from None
        except StoreDamaged as err:
            log.error("store damaged: %s", err)
            raise StoreBroken(damaged_message(err)) from None

    return wrapper


def damaged_message(err: StoreDamaged) -> str:
    """What anyone may read about damaged store files: the cause, with no server path."""
    return f"The vector store's files are damaged: {hide_paths(str(err))}"


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
        self,
        settings: Settings,
        encoder: ClipModel | None = None,
        store: VectorStore | None = None,
        multilingual: TextTower | None = None,
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.store = store
        self.started_at = time.time()
        self.load_error: str | None = None
        self.load_exception: BaseException | None = None
        self._library_seen = False  # the images collection was seen to exist (it is never dropped)
        self.cache = QueryCache(settings.query_cache_size)
        self.towers = TextTowers(settings, self.cache, multilingual)
        self.verified_files = VerifiedFiles()
        self.decode_budget = DecodeBudget(settings.decode_memory_mb << 20)
        self._classifier: ZeroShotClassifier | None = None
        self._classifier_lock = threading.Lock()
        self._loader: threading.Thread | None = None
        self._mismatch: str | None = None
        self._mismatch_checked_at = float("-inf")
        self.switching = ReadWriteLock()
        self._book: DuplicateBook | None = None
        self.stored_cells = StoredCells()

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
                self.towers.check_fit(encoder.model_name, encoder.dim)  # before serving anything
                self.encoder = encoder
            log.info(
                "model ready: %s (%s, %s)",
                self.encoder.model_name,
                self.encoder.device,
                self.encoder.precision,
            )
            self.prepare()
            settle_loaded_objects()
        except ModelUnavailable as err:  # the message says it all: no traceback
            log.error("%s", err)
            self.load_exception = err
            self.load_error = f"{type(err).__name__}: {err}"
        except Exception as err:  # keep serving health/readiness with the reason
            log.exception("loading failed")
            self.load_exception = err
            self.load_error = f"{type(err).__name__}: {err}"
            return
        self._load_text_towers()

    def load_text_towers_in_background(self) -> None:
        """Load the multilingual text tower in a thread, beside a CLIP given ready (tests)."""
        if self.towers.wanted:
            self._loader = threading.Thread(target=self._load_text_towers, name="wonders-towers", daemon=True)
            self._loader.start()

    def _load_text_towers(self) -> None:
        """The multilingual tower after CLIP (serving meanwhile: `auto` falls back to CLIP)."""
        if self.encoder is not None and self.towers.wanted:
            self.towers.check_fit(self.encoder.model_name, self.encoder.dim)
            self.towers.load(self.encoder.model_name, self.encoder.dim)
            settle_loaded_objects()

    def prepare(self) -> None:
        """Read the class vectors now, so the first query does not; problems are left to readiness."""
        try:
            self.classifier()
        except StoreUnavailable as err:
            log.warning("store not reachable yet: %s", err)
        except StoreError as err:  # damaged files: readiness says so, and recovers once they are fixed
            log.error("%s", err)
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
        if self.towers.refusal:
            return Readiness(False, "text_encoder_mismatch", hide_paths(self.towers.refusal))
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
        except StoreDamaged as err:
            log.error("store damaged: %s", err)
            self._mismatch_checked_at = float("-inf")  # searches check again too, until it is fixed
            return Readiness(False, "store_damaged", damaged_message(err))
        if mismatch:
            return Readiness(False, "model_mismatch", mismatch)
        return Readiness(True, "ready", "ready")

    def tower_states(self) -> dict[str, TowerState]:
        """Each text tower's state, for anyone to read (paths cut)."""
        clip = TowerState("ready", self.encoder.model_name) if self.encoder else TowerState("loading")
        multilingual = self.towers.state()
        if multilingual.reason:
            multilingual = replace(multilingual, reason=hide_paths(multilingual.reason))
        return {"clip": clip, "multilingual": multilingual}

    def require_loaded(self) -> tuple[ClipModel, VectorStore]:
        """The encoder and store once loaded, even when the collection needs rebuilding (for ingest)."""
        if self.encoder is None or self.store is None:
            state = self.readiness()
            raise NotReady(state.message, code=state.code)
        return self.encoder, self.store

    def require_ready(self) -> tuple[ClipModel, VectorStore]:
        """The encoder and store, or NotReady / ModelMismatch while they are not there or do not match."""
        encoder, store = self.require_loaded()
        if self.towers.refusal:
            raise NotReady(hide_paths(self.towers.refusal), code="text_encoder_mismatch")
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
            try:
                stored = self.store.collection_meta(IMAGES)
            except StoreDamaged:
                self._mismatch_checked_at = float("-inf")  # checked again on every call until fixed
                raise
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
                    spec = classifier_spec(
                        self.settings.classes_file, self.settings.data_dir, encoder.identity.model
                    )
                    stored = ZeroShotClassifier.from_spec(spec, encoder.text, encoder.logit_scale)
                self._classifier = stored
            return self._classifier

    def reload_classifier(self) -> None:
        """Forget the class vectors (and the model check) so the next request reads the store again."""
        with self._classifier_lock:
            self._classifier = None
        self._mismatch_checked_at = float("-inf")

    def switch_model(self, encoder: ClipModel, switch_store: Callable[[], None]) -> None:
        """Switch to another model at once: `switch_store` (which points the collections at the ones it
        built) runs while no verb does, then the new encoder answers, with a fresh cache and classes."""
        with self.switching.writing():
            switch_store()
            self.encoder = encoder
            self.cache = QueryCache(self.settings.query_cache_size)
            self.towers.cache = self.cache  # text vectors are looked up through the towers
            self.stored_cells.forget()  # the old model's cells are not the new one's
            self.reload_classifier()

    def class_by_id(self, class_id: str | None) -> LandmarkClass | None:
        """The class with this id, or None."""
        return self.classifier().by_id(class_id) if class_id else None

    def check_class(self, class_id: str | None) -> str | None:
        """A known class id (None for no filter), or UnknownClass naming the known ones."""
        if class_id is None or class_id == "":
            return None
        if self.class_by_id(class_id) is None:
            known = ", ".join([*(c.id for c in self.classifier().classes), OTHER.id])
            raise UnknownClass(f"Unknown class '{class_id[:64]}'. Known classes: {known}.")
        return class_id

    # -- the verbs ---------------------------------------------------------------------------------
    @store_calls
    def search(self, query: Query) -> results.Page:
        """One page of the photos nearest to what the query is about (its examples combined by
        `search/refine.py`; with `diverse`, reordered by MMR, `search/diversity.py`)."""
        started = time.perf_counter()
        check_examples(query)  # too many examples, a bad weight or an empty text: refused before any work
        _, store = self.require_ready()
        store.admit()  # a store known to be down: 503 now, before a query is encoded for nothing
        label = self.check_class(query.filters.label)
        k, offset = query.page.k, query.page.offset
        # No collection yet (nothing ingested): an empty page that says why, not an outage. Texts are
        # not even encoded; an upload is still checked (a bad one is a 415), a stored id is a 404.
        texts_only = all(isinstance(e.term, TextTerm) for e in query.all_examples)
        if texts_only and not self.library_exists():
            return results.Page([], k, offset, None, _ms_since(started), reason=EMPTY_LIBRARY)
        vector, exclude, encoded = self._query_vector(query)
        if not self.library_exists():
            return results.Page([], k, offset, None, _ms_since(started), reason=EMPTY_LIBRARY)
        try:
            hits = self._hits(store, vector, label, query, exclude)
        except CollectionMissing:  # deleted since it was seen
            return results.empty_library_page(k, offset, _ms_since(started))
        answer = results.page(hits, k, offset, _ms_since(started), self.class_by_id, encoded)
        if not hits and offset == 0 and store.count(IMAGES) == 0:
            answer = results.Page([], k, offset, None, answer.took_ms, reason=EMPTY_LIBRARY)
        return answer

    def _hits(
        self, store: VectorStore, vector: np.ndarray, label: str | None, query: Query, exclude: list[str]
    ) -> list[Hit]:
        """The page's results and one more (it tells whether a next page exists), nearest first."""
        k, offset = query.page.k, query.page.offset
        if query.diverse:
            return self._diverse_hits(store, vector, k + 1 + offset, label, query, exclude)[offset:]
        if len(exclude) > 1:
            # Several ids are left out here, not by the engine: a filter of more than one id makes Qdrant
            # search several times slower, and it fetches `offset` results before a page anyway.
            found = cells.nearest(
                store,
                vector,
                limit=offset + k + 1 + len(exclude),
                label=label,
                min_score=query.filters.min_score,
                hnsw_ef=self._beam(query),
                cells=self._cells(query, store, vector),
            )
            return [h for h in found if h.id not in exclude][offset : offset + k + 1]
        return cells.nearest(
            store,
            vector,
            limit=k + 1,
            offset=offset,
            label=label,
            min_score=query.filters.min_score,
            exclude_id=exclude[0] if exclude else None,
            hnsw_ef=self._beam(query),
            cells=self._cells(query, store, vector),
        )

    def _beam(self, query: Query) -> int | None:
        """The HNSW beam width of this query: HNSW_EF_TEXT when any example is a text (a text lies across
        the modality gap, far from every photo, where the graph built over photos needs a wider walk),
        else the store's HNSW_EF (None)."""
        if _has_text(query):
            return self.settings.hnsw_ef_text
        return None

    def _cells(self, query: Query, store: VectorStore, vector: np.ndarray) -> list[int] | None:
        """The cells a query with a text in it also searches (TEXT_CELLS_PROBE of them, nearest first,
        core/cells.py); None for photo queries, or while the library has no cells."""
        if not _has_text(query) or self.settings.text_cells_probe == 0:
            return None
        trained = self.stored_cells.current(store)
        return trained.probe(vector, self.settings.text_cells_probe) if trained is not None else None

    def library_exists(self) -> bool:
        """Whether the images collection exists (it does once anything was ingested, or indexing began).

        Once seen it is not asked again (a Qdrant server round trip per search otherwise)."""
        if self._library_seen:
            return True
        _, store = self.require_loaded()
        self._library_seen = store.collection_meta(IMAGES) is not None
        return self._library_seen

    def _retrieve(self, ids: list[str], with_vectors: bool = False) -> list[Any]:
        """Stored points by id; none while the collection does not exist yet."""
        _, store = self.require_ready()
        if not self.library_exists():
            return []
        return store.retrieve(IMAGES, ids, with_vectors=with_vectors)

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
        pool = cells.nearest(
            store,
            vector,
            limit=diversity.pool_size(wanted) + len(exclude),
            label=label,
            min_score=query.filters.min_score,
            hnsw_ef=self._beam(query),
            cells=self._cells(query, store, vector),
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

    def _query_vector(self, query: Query) -> tuple[np.ndarray, list[str], Encoded | None]:
        """The query vector, the ids to leave out of the answer (the stored photos it is made of), and
        how the query's own text was encoded when it is about a text (its tower, whether truncated)."""
        examples = query.all_examples
        stored_ids = [_point_id(e.term.point_id) for e in examples if isinstance(e.term, StoredTerm)]
        stored = self.stored_vectors(stored_ids) if stored_ids else {}
        next_stored = iter(stored_ids)  # the stored terms' canonical ids, in the examples' order
        vectors = []
        about_text: Encoded | None = None
        for i, example in enumerate(examples):
            term = example.term
            if isinstance(term, TextTerm):
                encoded = self.text_embedding(term)
                if i == 0:  # `about`: the answer says how it was encoded
                    about_text = encoded
                vectors.append(encoded.vector)
            elif isinstance(term, UploadTerm):
                vectors.append(self.upload_vector(term.data))
            elif isinstance(term, StoredTerm):
                vectors.append(stored[next(next_stored)])
            else:
                raise TypeError(f"unknown query term {type(term).__name__}")
        if len(vectors) == 1 and examples[0].weight > 0:
            return vectors[0], stored_ids, about_text
        return refine.combine(vectors, [e.signed_weight for e in examples]), stored_ids, about_text

    def text_vector(self, text: str) -> np.ndarray:
        """The text's embedding (the tower `auto` picks), from the cache when it was asked before."""
        return self.text_embedding(TextTerm(text)).vector

    def text_embedding(self, term: TextTerm) -> Encoded:
        """The term's text as a vector from the tower chosen for it, and what made it (search/text_towers.py)."""
        key = normalised_text(term.text)
        encoder, _ = self.require_ready()
        cut = len(key) < len(" ".join(term.text.split()))
        return self.towers.encode(key, term.text_encoder, encoder.text, cut=cut)

    @store_calls
    def embed(self, texts: list[str], text_encoder: TextEncoder, image: bytes | None) -> results.EmbedAnswer:
        """Unit vectors of texts and of one photo, exactly as search uses them (the same cache)."""
        started = time.perf_counter()
        if not texts and image is None:
            raise EmptyQuery("Send at least one text or an image to embed.")
        for text in texts:
            normalised_text(text)  # any empty text is refused before anything is encoded
        encoder, _ = self.require_ready()
        found = [results.text_embedding(t, self.text_embedding(TextTerm(t, text_encoder))) for t in texts]
        if image is not None:
            vector = self.upload_vector(image)
            found.append(results.Embedding("image", [float(x) for x in vector], "clip", encoder.model_name))
        return results.EmbedAnswer(found, encoder.dim, _ms_since(started))

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
        """The stored vectors of photos of the library (one store call for those not in the cache);
        UnknownImage if one is missing.

        A point's vector never changes under its id (the id is its content's hash, the vector the current
        model's; a model switch starts a fresh cache), so "more like this" and refining with photos on
        screen skip the store the second time, as a repeated text skips the text tower."""
        found: dict[str, np.ndarray] = {}
        missing = []
        for point_id in dict.fromkeys(point_ids):
            cached = self.cache.get(("stored", point_id))
            if cached is None:
                missing.append(point_id)
            else:
                found[point_id] = cached
        for point in self._retrieve(missing, with_vectors=True) if missing else []:
            if point.vector is not None:
                found[point.id] = np.asarray(point.vector, dtype=np.float32)
                self.cache.put(("stored", point.id), found[point.id])
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
            label=results.ClassLabel.of(best.label, best.label.id),
            confidence=round(best.best.confidence, 6),
            top3=[results.scored(s.cls, s.cls.id, round(s.confidence, 6)) for s in best.top3],
            took_ms=_ms_since(started),
            reason=best.reason,
        )

    def _stored_payload(self, point_id: str) -> tuple[str, dict[str, Any]]:
        """The canonical id and stored payload of a photo, or UnknownImage (an empty library included).

        Needs only the store: files and metadata are served even while the model check cannot be made."""
        _, store = self.require_loaded()
        point_id = _point_id(point_id)
        try:
            found = store.retrieve(IMAGES, [point_id])
        except CollectionMissing:
            raise UnknownImage("No image with this id.") from None
        if not found:
            raise UnknownImage("No image with this id.")
        return point_id, found[0].payload

    @store_calls
    def image(self, point_id: str) -> results.ImageRecord:
        """Everything stored about one photo."""
        point_id, payload = self._stored_payload(point_id)
        return results.image_record(point_id, payload, self.class_by_id)

    @store_calls
    def image_file(self, point_id: str) -> ServedFile:
        """The library file of a stored photo, opened, while it is still the indexed bytes (search/files.py)."""
        point_id, payload = self._stored_payload(point_id)
        return open_indexed(
            point_id, ImagePayload.from_stored(payload), self.settings.images_dir, self.verified_files
        )

    @store_calls
    def thumbnail(self, point_id: str) -> ServedFile:
        """The JPEG thumbnail of a stored photo, made from its file when it is missing.

        A thumbnail that cannot be written (a read-only data folder) is still served, from memory."""
        point_id, _ = self._stored_payload(point_id)
        settings = self.settings
        path = thumb_path(settings.thumbs_dir, point_id)
        try:
            return ServedFile(path.open("rb"), "image/jpeg", etag=point_id, size=path.stat().st_size)
        except OSError:
            pass  # not made yet, or unreadable: made again below
        source = self.image_file(point_id)
        with source.handle:
            data = source.handle.read()
        try:
            decoded = decode_image(data, settings.max_image_pixels, min_side=settings.thumb_size)
        except UnsupportedImage:
            raise FileMissing("The image's file can no longer be decoded.") from None
        jpeg = thumbnail_jpeg(decoded.image, settings.thumb_size)
        try:
            write_thumb(settings.thumbs_dir, point_id, jpeg)
        except OSError as err:
            log.warning("cannot write the thumbnail of %s: %s", point_id, err)
        return ServedFile(io.BytesIO(jpeg), "image/jpeg", etag=point_id, size=len(jpeg))

    @store_calls
    def classes(self) -> list[results.ClassInfo]:
        """The classes with names, prompts and how many photos carry each; `other` ("None of these") last."""
        _, store = self.require_ready()
        known = [*self.classifier().classes, OTHER]
        counts = self._label_counts(store, [c.id for c in known])
        return [results.ClassInfo(c.id, c.name, c.name_ru, list(c.prompts), counts[c.id]) for c in known]

    @store_calls
    def stats(self) -> results.Stats:
        """Point count, model, embedding size, counts per class, the last cross-check and the limits."""
        encoder, store = self.require_ready()
        known = [*self.classifier().classes, OTHER]
        try:
            exists = self.library_exists()
            collection = store.stats(IMAGES) if exists else CollectionStats(points=0, indexed_vectors=0)
            points = store.count(IMAGES) if exists else 0
        except CollectionMissing:  # deleted since it was seen
            collection, points = CollectionStats(points=0, indexed_vectors=0), 0
        settings = self.settings
        return results.Stats(
            points=points,
            indexed_vectors=collection.indexed_vectors,
            model=encoder.model_name,
            dim=encoder.dim,
            device=encoder.device,
            precision=encoder.precision,
            store=settings.store_kind,
            classes=self._label_counts(store, [c.id for c in known]),
            crosscheck=_read_json(settings.crosscheck_report),
            query_cache={"hits": self.cache.hits, "misses": self.cache.misses},
            limits={"max_upload_mb": settings.max_upload_mb, "max_k": MAX_K, "default_k": DEFAULT_K},
        )

    def _label_counts(self, store: VectorStore, labels: list[str]) -> dict[str, int]:
        """Photos per class label; all zero while the collection does not exist yet."""
        if not self.library_exists():
            return dict.fromkeys(labels, 0)
        return store.label_counts(IMAGES, labels)

    def _decode_upload(self, data: bytes, min_side: int) -> Image.Image:
        """An uploaded photo decoded to RGB, shrunk while decoding to what the model needs."""
        try:
            return decode_image(
                data, self.settings.max_image_pixels, min_side=min_side, budget=self.decode_budget
            ).image
        except DecodeBusy:
            raise Busy("The server is decoding other large photos right now; retry in a moment.") from None
        except UnsupportedImage as err:
            raise UnsupportedUpload(
                f"The upload is not a decodable image: {err.reason}.", details={"reason": err.reason}
            ) from None


def _has_text(query: Query) -> bool:
    return any(isinstance(e.term, TextTerm) for e in query.all_examples)


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


def _label_counts(store: VectorStore, labels: list[str]) -> dict[str, int]:
    """Photos per class; all zero while the library holds no collection."""
    try:
        return store.label_counts(IMAGES, labels)
    except CollectionMissing:
        return dict.fromkeys(labels, 0)


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
    as before. Only the young generations are collected first: a full collection here is itself that
    stall, and it came while the service already answered (liveness took 260-370 ms once, at the end of
    a load that waited on a hung store). Cyclic garbage that reached the old generation while loading,
    and requests in flight at that moment, stay frozen: a little memory, once."""
    gc.collect(1)
    gc.freeze()


def hide_paths(text: str) -> str:
    """`text` with every absolute path cut to its last part, for messages anyone may read."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) + "…/" + m.group(2).rstrip("/").rsplit("/", 1)[-1], text)


_ABSOLUTE_PATH = re.compile(r"(^|[\s'\"(=])(/[^\s'\"]+)")
