"""The landmark classes and their prompts, read from the readable data file `classes.yaml`."""

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


class ClassesFileError(ValueError):
    """The classes file is missing or malformed; the message says where."""


def load_classes(path: Path) -> list[LandmarkClass]:
    """Parse and check the classes file; raise ClassesFileError with a precise message when it is wrong."""
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
        class_id = entry.get("id")
        if not isinstance(class_id, str) or not _ID_PATTERN.match(class_id):
            raise ClassesFileError(f"{where}: 'id' must be lower-case letters, digits and _")
        if class_id in seen:
            raise ClassesFileError(f"{where}: duplicate id {class_id!r}")
        seen.add(class_id)
        prompts = entry.get("prompts")
        if (
            not isinstance(prompts, list)
            or not prompts
            or not all(isinstance(p, str) and p.strip() for p in prompts)
        ):
            raise ClassesFileError(f"{where} ({class_id}): 'prompts' must be a non-empty list of texts")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ClassesFileError(f"{where} ({class_id}): 'name' is required")
        name_ru = entry.get("name_ru") or name
        classes.append(
            LandmarkClass(class_id, name.strip(), str(name_ru).strip(), tuple(p.strip() for p in prompts))
        )
    return classes
