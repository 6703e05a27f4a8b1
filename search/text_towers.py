"""The text towers a search may use: CLIP's own, and the multilingual one beside it.

`MULTILINGUAL_MODEL` names the multilingual tower (core/model/multilingual.py); unset, it is M-CLIP's
XLM-R-large when CLIP_MODEL is ViT-L/14, the image model it was trained for, else off with one log line.
The tower loads in the service's loader thread after CLIP is ready; meanwhile `auto` sends every text to
CLIP and the answer says why (`fallback`). A tower that cannot fit CLIP_MODEL (its teacher, its vector
size) is refused: when it was set explicitly the service does not serve (`refusal`), when it came from
the default it is switched off.

`encode` is the one way a text becomes a vector, for search and for `/api/embed` alike: the tower the
router or the caller chose, the query cache keyed by tower and model, whether the text was cut.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.model.multilingual import (
    MCLIP_MODEL,
    MultilingualLoadError,
    MultilingualTextTower,
    TowerMismatch,
    check_fit,
    pairs_with,
)
from core.model.towers import TextTower
from core.settings import Settings
from search.cache import LruCache, QueryCache
from search.errors import TowerLoading, TowerOff
from search.text_router import TextEncoder, auto_choice

log = logging.getLogger(__name__)

TowerStateName = Literal["loading", "ready", "off", "failed"]
# Why `auto` let CLIP answer a text it would have sent to the multilingual tower.
Fallback = Literal["loading", "off", "failed"]


@dataclass(frozen=True)
class TowerState:
    """Where a text tower stands, for /api/ready: its state, its model, and why it is off or failed."""

    state: TowerStateName
    model: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Encoded:
    """A text's unit vector and what made it."""

    vector: np.ndarray
    tower: str  # "clip" | "multilingual"
    model: str
    truncated: bool
    fallback: Fallback | None = None  # set when auto chose the multilingual tower but CLIP answered


@dataclass(frozen=True)
class MultilingualChoice:
    """The multilingual model the settings ask for (None: off), and whether they named it explicitly."""

    model: str | None
    explicit: bool
    reason: str | None = None  # why it is off


def multilingual_choice(settings: Settings) -> MultilingualChoice:
    """What MULTILINGUAL_MODEL resolves to (see the module docstring)."""
    chosen = settings.multilingual_model
    if chosen == "off":
        return MultilingualChoice(None, True, "MULTILINGUAL_MODEL is off")
    if chosen is not None:
        return MultilingualChoice(chosen, True)
    if pairs_with(MCLIP_MODEL, settings.clip_model):
        return MultilingualChoice(MCLIP_MODEL, False)
    return MultilingualChoice(
        None,
        False,
        f"the default multilingual model {MCLIP_MODEL} was trained for CLIP ViT-L/14, not CLIP_MODEL; "
        "set MULTILINGUAL_MODEL to one trained for it",
    )


class TextTowers:
    """CLIP's text tower (given per call: it belongs to the loaded CLIP) and the multilingual one."""

    def __init__(self, settings: Settings, cache: QueryCache, multilingual: TextTower | None = None) -> None:
        self.settings = settings
        self.cache = cache
        # Whether a text is cut at the tower's limit, by the same key (a tokenizer's answer never changes).
        self._truncated: LruCache[bool] = LruCache(cache.size, counted=False)
        self.choice = multilingual_choice(settings)
        self.multilingual = multilingual
        self.refusal: str | None = None  # an explicitly set tower that does not fit: do not serve
        self._lock = threading.Lock()
        if multilingual is not None:
            self._state = TowerState("ready", multilingual.model_name)
        elif self.choice.model is None:
            self._state = TowerState("off", None, self.choice.reason)
            if not self.choice.explicit:
                log.info("multilingual text tower off: %s", self.choice.reason)
        else:
            self._state = TowerState("loading", self.choice.model)

    @property
    def wanted(self) -> bool:
        """Whether a multilingual tower is still to be loaded."""
        return self.multilingual is None and self._state.state == "loading"

    def state(self) -> TowerState:
        """The multilingual tower's state (its reason may name server paths: see `SearchService`)."""
        return self._state

    def check_fit(self, image_model: str, image_dim: int) -> None:
        """Refuse or switch off a tower that cannot fit CLIP, by what is known without loading it."""
        if not self.wanted or self.choice.model is None:
            return
        try:
            check_fit(self.choice.model, image_model, image_dim)
        except TowerMismatch as err:
            self._mismatch(err)

    def load(self, image_model: str, image_dim: int) -> None:
        """Load and warm the multilingual tower (the loader thread, after CLIP); failures are its state."""
        if not self.wanted or self.choice.model is None:
            return
        settings = self.settings
        precision = settings.multilingual_precision
        if precision == "auto" and settings.clip_precision in ("fp32", "bf16", "fp16"):
            precision = settings.clip_precision  # an explicit CLIP precision holds for both towers
        try:
            tower = MultilingualTextTower(
                self.choice.model,
                device=settings.clip_device,
                precision=precision,
                image_model=image_model,
                image_dim=image_dim,
            )
            tower.warm_up()
        except TowerMismatch as err:
            self._mismatch(err)
            return
        except MultilingualLoadError as err:  # the service keeps answering with CLIP
            log.error("the multilingual text tower failed to load: %s", err)
            self._state = TowerState("failed", self.choice.model, str(err))
            return
        except Exception:
            log.exception("the multilingual text tower failed to load")
            self._state = TowerState(
                "failed", self.choice.model, "it failed to load; the server log says why"
            )
            return
        with self._lock:
            self.multilingual = tower
            self._state = TowerState("ready", tower.model_name)
        log.info(
            "multilingual text tower ready: %s (%s, %s)", tower.model_name, tower.device, tower.precision
        )

    def _mismatch(self, err: TowerMismatch) -> None:
        if self.choice.explicit:
            log.error("refusing to serve: %s", err)
            self.refusal = f"MULTILINGUAL_MODEL does not fit CLIP_MODEL: {err}"
            self._state = TowerState("failed", self.choice.model, str(err))
        else:
            log.warning("multilingual text tower off: %s", err)
            self._state = TowerState("off", None, str(err))

    def encode(self, text: str, text_encoder: TextEncoder, clip: TextTower, cut: bool = False) -> Encoded:
        """`text` (normalised) as a vector from the tower chosen for it, through the query cache.

        `cut`: the text was already shortened before tokenizing (it is then reported as truncated)."""
        tower, fallback = self._tower_for(text, text_encoder, clip)
        key = (tower.name, tower.model_name, text)
        vector = self.cache.get(key)
        if vector is None:
            vector = tower.encode_texts([text])[0]
            self.cache.put(key, vector)
        truncated = self._truncated.get(key)
        if truncated is None:  # tokenizing again costs about as much as the search itself
            truncated = tower.truncated([text])[0]
            self._truncated.put(key, truncated)
        truncated = cut or truncated
        return Encoded(vector, tower.name, tower.model_name, truncated, fallback)

    def _tower_for(
        self, text: str, text_encoder: TextEncoder, clip: TextTower
    ) -> tuple[TextTower, Fallback | None]:
        wanted = auto_choice(text) if text_encoder == "auto" else text_encoder
        if wanted == "clip":
            return clip, None
        multilingual, state = self.multilingual, self._state
        if multilingual is not None:
            return multilingual, None
        if text_encoder == "auto":
            fallback: Fallback = (
                "off" if state.state == "off" else "failed" if state.state == "failed" else "loading"
            )
            return clip, fallback
        if state.state == "loading":
            raise TowerLoading("The multilingual text model is still loading; retry in a few seconds.")
        raise TowerOff(
            "The multilingual text model is not available on this server"
            + (" (it failed to load)." if state.state == "failed" else " (it is switched off).")
            + " Use text_encoder=auto or clip."
        )
