"""The landmark classes and their prompts, read from the readable data file `classes.yaml`.

The same file holds the distractors: prompt groups for what a photo shows when it is none of the classes
(people, food, rooms, ...). They are not classes; a photo they win is labelled `other` ("None of these").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

_ID_PATTERN = re.compile(r"^[a-z0-9_]{1,64}$")


@dataclass(frozen=True)
class LandmarkClass:
    """One class: a stable id, an English and a Russian name, and the prompts that describe it."""

    id: str
    name: str
    name_ru: str
    prompts: tuple[str, ...]

    def label(self) -> dict[str, str]:
        """The short form used in API answers: id and both names."""
        return {"id": self.id, "name": self.name, "name_ru": self.name_ru}


# The answer when a photo is none of the classes. Its id is fixed (payloads, filters and the UI rely on it),
# so no class in the file may use it.
OTHER = LandmarkClass(id="other", name="None of these", name_ru="Ничего из этого", prompts=())


@dataclass(frozen=True)
class Distractor:
    """A group of prompts for something that is none of the classes (people, food, ...)."""

    id: str
    prompts: tuple[str, ...]


@dataclass(frozen=True)
class ClassesFile:
    """Everything the classes file says: the classes and the distractors."""

    classes: list[LandmarkClass]
    distractors: list[Distractor]


class ClassesFileError(ValueError):
    """The classes file is missing or malformed; the message says where."""


def load_classes(path: Path) -> list[LandmarkClass]:
    """The classes of the classes file; raise ClassesFileError with a precise message when it is wrong."""
    return load_classes_file(path).classes


def load_distractors(path: Path) -> list[Distractor]:
    """The distractors of the classes file (none when it has no `distractors` list)."""
    return load_classes_file(path).distractors


def load_classes_file(path: Path) -> ClassesFile:
    """Parse and check the whole classes file; raise ClassesFileError with a precise message when it is wrong."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ClassesFileError(f"cannot read the classes file {path}: {err}") from err
    except UnicodeDecodeError as err:
        raise ClassesFileError(f"the classes file {path} is not UTF-8 text: {err}") from err
    except yaml.YAMLError as err:
        raise ClassesFileError(f"the classes file {path} is not valid YAML: {err}") from err
    entries = raw.get("classes") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ClassesFileError(f"{path}: expected a non-empty list under 'classes'")
    classes: list[LandmarkClass] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{path}: class #{index + 1}"
        if not isinstance(entry, dict):
            raise ClassesFileError(f"{where}: expected a mapping")
        class_id = _checked_id(entry, where, seen)
        prompts = _checked_prompts(entry, f"{where} ({class_id})")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ClassesFileError(f"{where} ({class_id}): 'name' is required")
        name_ru = entry.get("name_ru") or name
        classes.append(LandmarkClass(class_id, name.strip(), str(name_ru).strip(), prompts))
    return ClassesFile(classes, _distractors(raw.get("distractors"), path, seen))


def _distractors(entries: object, path: Path, seen: set[str]) -> list[Distractor]:
    """The checked `distractors` list; its ids may not repeat each other's or a class's."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ClassesFileError(f"{path}: 'distractors' must be a list")
    distractors = []
    for index, entry in enumerate(entries):
        where = f"{path}: distractor #{index + 1}"
        if not isinstance(entry, dict):
            raise ClassesFileError(f"{where}: expected a mapping")
        distractor_id = _checked_id(entry, where, seen)
        distractors.append(Distractor(distractor_id, _checked_prompts(entry, f"{where} ({distractor_id})")))
    return distractors


def _checked_id(entry: dict[str, object], where: str, seen: set[str]) -> str:
    """The entry's id, checked for form, the reserved `other` and repeats (added to `seen`)."""
    entry_id = entry.get("id")
    if not isinstance(entry_id, str) or not _ID_PATTERN.match(entry_id):
        raise ClassesFileError(f"{where}: 'id' must be lower-case letters, digits and _")
    if entry_id == OTHER.id:
        raise ClassesFileError(f"{where}: the id {OTHER.id!r} is reserved for 'None of these'")
    if entry_id in seen:
        raise ClassesFileError(f"{where}: duplicate id {entry_id!r}")
    seen.add(entry_id)
    return entry_id


def _checked_prompts(entry: dict[str, object], where: str) -> tuple[str, ...]:
    """The entry's prompts, stripped; a non-empty list of non-blank texts is required."""
    prompts = entry.get("prompts")
    if (
        not isinstance(prompts, list)
        or not prompts
        or not all(isinstance(p, str) and p.strip() for p in prompts)
    ):
        raise ClassesFileError(f"{where}: 'prompts' must be a non-empty list of texts")
    return tuple(p.strip() for p in prompts)
