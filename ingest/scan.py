"""Finding photo files under the given folders, and what is skipped by name alone."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.images import IMAGE_SUFFIXES, is_image_name

# Image formats we recognise by name but do not decode: reported as skipped, not silently ignored.
KNOWN_UNSUPPORTED = frozenset(
    {
        ".heic",
        ".heif",
        ".avif",
        ".jxl",
        ".psd",
        ".svg",
        ".ico",
        ".tga",
        ".raw",
        ".cr2",
        ".nef",
        ".dng",
        ".eps",
    }
)


@dataclass
class ScanResult:
    """Candidate image files (sorted, unique) and files skipped by their name."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def scan(paths: Iterable[Path], library: Path | None = None) -> ScanResult:
    """Walk files and folders; hidden entries are ignored, other non-image names are not photos.

    With `library`, a link inside it that leads out of it is skipped, never followed: the service serves
    only files inside the library, and a link is no way to smuggle another file in."""
    result = ScanResult()
    seen: set[Path] = set()
    inside = library.resolve() if library is not None else None
    for root in paths:
        root = Path(root)
        if root.is_file():
            candidates: Iterable[Path] = [root]
        elif root.is_dir():
            candidates = sorted(p for p in root.rglob("*") if p.is_file())
        else:
            result.skipped.append((_readable(root), "no such file or folder"))
            continue
        for path in candidates:
            if any(part.startswith(".") for part in path.relative_to(root).parts) and path != root:
                continue
            resolved = path.resolve()
            if inside is not None and _leaves(path, resolved, inside):
                result.skipped.append((_readable(path), "a link out of the photo library; not followed"))
                continue
            if resolved in seen:
                continue
            seen.add(resolved)
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES and not _is_utf8(path):
                # The path goes into the payload, which the stores keep as UTF-8 text.
                result.skipped.append((_readable(path), "file name is not valid UTF-8; rename it"))
            elif suffix in IMAGE_SUFFIXES:
                result.files.append(path)
            elif suffix in KNOWN_UNSUPPORTED:
                result.skipped.append((_readable(path), f"unsupported format ({suffix})"))
            elif path == root:
                result.skipped.append((_readable(path), "not an image file name"))
    return result


def _leaves(path: Path, resolved: Path, library: Path) -> bool:
    """True when `path` lies in the library but, through a link, names a file outside it."""
    named = path.absolute().parent.resolve() / path.name  # the folders' links followed, not the file's
    return named.is_relative_to(library) and not resolved.is_relative_to(library)


def _is_utf8(path: Path) -> bool:
    """False for a name with bytes that are not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _readable(path: Path) -> Path:
    """The path with its undecodable bytes written as \\xNN, so it can be printed and sent as JSON."""
    return Path(os.fsencode(path).decode("utf-8", "backslashreplace"))


def library_is_empty(root: Path) -> bool:
    """True when the folder holds no file with an image name (or is not there)."""
    return not root.is_dir() or not any(p.is_file() and is_image_name(p) for p in root.rglob("*"))
