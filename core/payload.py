"""The payload of an image point: every key spelled once, and the stored path <-> library file rule.

Writers (ingest) build an `ImagePayload` and store `to_stored()`; readers (search, ingest, eval) read
`ImagePayload.from_stored(point.payload)`. Keys missing from points written by older versions read as
None, so existing collections keep working without a re-ingest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

# The stored key of the zero-shot class id: also the payload index and the filter of every search.
LABEL_KEY = "label"
# The stored key of the fingerprint of the prompts that produced the label (relabel when it changes).
LABELS_VERSION_KEY = "labels_version"
PATH_KEY = "path"
# The perceptual hashes of the photo (core/phash.py Fingerprint, hex), for near-duplicates.
PHASH_KEY = "phash"
# Further paths of byte-identical files that collapsed into this point at ingest (besides `path`).
OTHER_PATHS_KEY = "other_paths"


@dataclass(frozen=True)
class ScoredClass:
    """A class id with the confidence the classifier gave it."""

    id: str
    confidence: float | None


@dataclass(frozen=True)
class ImagePayload:
    """Everything stored with an image vector."""

    path: str
    sha256: str | None = None
    bytes: int | None = None
    # The file's modification time at ingest (ns): a file with another size or time is re-hashed before
    # it is served. Points from before it existed are re-hashed on their first serve.
    mtime_ns: int | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    label: str | None = None
    confidence: float | None = None
    top3: tuple[ScoredClass, ...] = field(default_factory=tuple)
    labels_version: str | None = None
    attribution: dict[str, Any] | None = None
    ingested_at: str | None = None
    phash: tuple[str, ...] = ()
    other_paths: tuple[str, ...] = ()

    def to_stored(self) -> dict[str, Any]:
        """The JSON-ready dict written to the store."""
        stored = asdict(self)
        stored["top3"] = [{"id": s.id, "confidence": s.confidence} for s in self.top3]
        stored[PHASH_KEY] = list(self.phash)
        stored[OTHER_PATHS_KEY] = list(self.other_paths)
        return stored

    @classmethod
    def from_stored(cls, payload: dict[str, Any]) -> ImagePayload:
        """Read a stored payload, tolerating points written before a key existed."""
        top3 = tuple(
            ScoredClass(str(entry.get("id")), _float_or_none(entry.get("confidence")))
            for entry in payload.get("top3") or []
            if isinstance(entry, dict)
        )
        attribution = payload.get("attribution")
        return cls(
            path=str(payload.get(PATH_KEY, "")),
            sha256=_str_or_none(payload.get("sha256")),
            bytes=_int_or_none(payload.get("bytes")),
            mtime_ns=_int_or_none(payload.get("mtime_ns")),
            width=_int_or_none(payload.get("width")),
            height=_int_or_none(payload.get("height")),
            format=_str_or_none(payload.get("format")),
            label=_str_or_none(payload.get(LABEL_KEY)),
            confidence=_float_or_none(payload.get("confidence")),
            top3=top3,
            labels_version=_str_or_none(payload.get(LABELS_VERSION_KEY)),
            attribution=attribution if isinstance(attribution, dict) else None,
            ingested_at=_str_or_none(payload.get("ingested_at")),
            phash=_strings(payload.get(PHASH_KEY)),
            other_paths=_strings(payload.get(OTHER_PATHS_KEY)),
        )


def label_fields(label: str, confidence: float, top3: list[ScoredClass], version: str) -> dict[str, Any]:
    """The partial payload that (re-)labels a point: class, confidence, top 3 and the prompts' version."""
    return {
        LABEL_KEY: label,
        "confidence": round(confidence, 6),
        "top3": [{"id": s.id, "confidence": s.confidence} for s in top3],
        LABELS_VERSION_KEY: version,
    }


def path_fields(stored: str, size: int | None = None, mtime_ns: int | None = None) -> dict[str, Any]:
    """The partial payload that moves a point to another stored path (a renamed file), with its state."""
    fields: dict[str, Any] = {PATH_KEY: stored}
    if size is not None and mtime_ns is not None:
        fields |= {"bytes": size, "mtime_ns": mtime_ns}
    return fields


def other_paths_fields(paths: list[str]) -> dict[str, Any]:
    """The partial payload that records the further paths of byte-identical copies of a point's file."""
    return {OTHER_PATHS_KEY: list(paths)}


def stored_path(path: Path, images_dir: Path) -> str:
    """The path stored in the payload: relative to the library when inside it, else absolute."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(images_dir.resolve()).as_posix()
    except ValueError:
        return str(resolved)


def library_file(stored: str, images_dir: Path) -> Path:
    """The file on disk a stored path names."""
    path = Path(stored)
    return path if path.is_absolute() else images_dir / path


def public_path(stored: str) -> str:
    """The path a client may see: inside the library as stored; from outside it only the file name."""
    posix = PurePosixPath(stored)
    return posix.name if posix.is_absolute() else stored


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
