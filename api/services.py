"""The service behind the routes: model, store and classifier, their readiness, and the query cache.

Kept in `app.extensions["wonders"]`. In production the model loads in a background thread when the
process starts (readiness answers 503 meanwhile); tests pass a ready encoder and store.
"""

from __future__ import annotations

import gc
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from api.errors import ApiError
from core.classes import LandmarkClass, load_classes
from core.model import ClipModel, load_clip
from core.settings import Settings
from core.store import IMAGES, CollectionMismatch, Hit, StoreUnavailable, VectorStore, open_store
from core.store.base import check_meta
from core.zero_shot import ZeroShotClassifier

log = logging.getLogger(__name__)


class QueryCache:
    """A small thread-safe LRU of text -> vector, so repeated queries skip the text tower."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        """The cached vector, refreshed as most recent, or None."""
        with self._lock:
            vector = self._items.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return vector

    def put(self, key: str, vector: np.ndarray) -> None:
        """Remember a vector, evicting the least recently used."""
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


@dataclass
class Readiness:
    """Whether queries can be answered, and if not, why."""

    ready: bool
    code: str
    message: str


class WondersService:
    """Everything a request needs; see the module docstring."""

    MAX_QUERY_CHARS = 1000
    MISMATCH_CHECK_S = 30.0  # far beyond CLIP's 77 tokens, which truncation cuts anyway

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

    # -- loading -----------------------------------------------------------------------------------
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
        except ApiError as err:
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
            return Readiness(
                False, "store_unavailable", "The vector store is not reachable right now; retry soon."
            )
        if mismatch:
            return Readiness(False, "model_mismatch", mismatch)
        return Readiness(True, "ready", "ready")

    def require_ready(self) -> tuple[ClipModel, VectorStore]:
        """The encoder and store, or a 503 ApiError while they are not there or do not match."""
        if self.encoder is None or self.store is None:
            state = self.readiness()
            raise ApiError(503, state.code, state.message)
        mismatch = self.collection_mismatch()
        if mismatch:
            raise ApiError(503, "model_mismatch", mismatch)
        return self.encoder, self.store

    def require_loaded(self) -> tuple[ClipModel, VectorStore]:
        """The encoder and store once loaded, even when the collection needs rebuilding (for ingest)."""
        if self.encoder is None or self.store is None:
            state = self.readiness()
            raise ApiError(503, state.code, state.message)
        return self.encoder, self.store

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
        """The class with this id from the classifier, or None."""
        return self.classifier().by_id(class_id) if class_id else None

    def check_class(self, class_id: str | None) -> str | None:
        """A known class id, or a 400 naming the known ones."""
        if class_id is None or class_id == "":
            return None
        if self.class_by_id(class_id) is None:
            known = ", ".join(c.id for c in self.classifier().classes)
            raise ApiError(400, "unknown_class", f"Unknown class '{class_id[:64]}'. Known classes: {known}.")
        return class_id

    # -- queries -----------------------------------------------------------------------------------
    def text_vector(self, text: str) -> np.ndarray:
        """The query's text embedding, from the cache when it was asked before."""
        encoder, _ = self.require_ready()
        # Lone surrogates (valid in JSON strings, "\ud800") are no text a tokenizer can take.
        text = text.encode("utf-8", "replace").decode("utf-8")
        key = " ".join(text.split())[: self.MAX_QUERY_CHARS]
        vector = self.cache.get(key)
        if vector is None:
            vector = encoder.text.encode_texts([key])[0]
            self.cache.put(key, vector)
        return vector

    def search(
        self, vector: np.ndarray, k: int, offset: int, label: str | None, min_score: float | None
    ) -> list[Hit]:
        """Nearest images to a vector."""
        _, store = self.require_ready()
        return store.query(IMAGES, vector, limit=k, offset=offset, label=label, min_score=min_score)

    def result(self, hit: Hit) -> dict[str, Any]:
        """One search answer in the API's Result shape."""
        payload = hit.payload
        return {"id": hit.id, "score": round(hit.score, 6), **self.describe(hit.id, payload)}

    def describe(self, point_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The fields every image answer carries: label, confidence, urls, size, attribution."""
        landmark = self.class_by_id(payload.get("label"))
        label = landmark.label() if landmark else _unknown_label(payload.get("label"))
        return {
            "label": label,
            "confidence": payload.get("confidence"),
            "thumb_url": f"/images/{point_id}/thumb",
            "image_url": f"/images/{point_id}",
            "width": payload.get("width"),
            "height": payload.get("height"),
            "attribution": payload.get("attribution"),
        }

    def top3(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """The stored top 3 classes with their names."""
        out = []
        for entry in payload.get("top3") or []:
            landmark = self.class_by_id(entry.get("id"))
            label = landmark.label() if landmark else _unknown_label(entry.get("id"))
            out.append({**label, "confidence": entry.get("confidence")})
        return out


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


def _unknown_label(class_id: Any) -> dict[str, Any]:
    """A label whose class is no longer in the classes file (until the next ingest re-labels it)."""
    text = str(class_id) if class_id else "unknown"
    return {"id": text, "name": text, "name_ru": text}
