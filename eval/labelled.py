"""The labelled photos for classification: a folder tree `<root>/<class_id>/...` (any depth below the class
folder), with an optional `other/` folder of photos that are none of the classes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.classes import OTHER
from core.images import is_image_name


class LabelledTreeError(ValueError):
    """The folder tree cannot be used; the message says why."""


@dataclass(frozen=True)
class LabelledPhoto:
    """One photo and the label its folder gives it (a class id or `other`)."""

    path: Path
    label: str


@dataclass
class LabelledSet:
    """The photos found, in a stable order, and what was left out (folders of no known class, loose files)."""

    root: Path
    photos: list[LabelledPhoto]
    unknown_folders: list[str] = field(default_factory=list)
    loose_files: list[str] = field(default_factory=list)

    @property
    def has_other(self) -> bool:
        """Whether the set holds photos of none of the classes (needed to fit the threshold)."""
        return any(p.label == OTHER.id for p in self.photos)

    def counts(self) -> dict[str, int]:
        """Photos per label."""
        return dict(sorted(Counter(p.label for p in self.photos).items()))


def read_labelled_tree(root: Path, class_ids: Iterable[str]) -> LabelledSet:
    """The photos under `<root>/<class_id>/` and `<root>/other/`; folders of unknown classes are reported."""
    root = Path(root)
    if not root.is_dir():
        raise LabelledTreeError(f"the labelled folder {root} does not exist or is not a folder")
    known = set(class_ids) | {OTHER.id}
    labelled = LabelledSet(root, [])
    for entry in sorted(root.iterdir()):
        if entry.is_file():
            if is_image_name(entry):
                labelled.loose_files.append(entry.name)
            continue
        if not entry.is_dir():
            continue
        if entry.name not in known:
            labelled.unknown_folders.append(entry.name)
            continue
        for path in sorted(entry.rglob("*")):
            if path.is_file() and is_image_name(path) and not path.name.startswith("."):
                labelled.photos.append(LabelledPhoto(path, entry.name))
    if not labelled.photos:
        raise LabelledTreeError(
            f"no photos under {root}/<class_id>/ (known classes: {', '.join(sorted(known))})"
        )
    return labelled
