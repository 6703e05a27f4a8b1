"""The classes file (core/classes.py, core/classes.yaml): the shipped classes are DESIGN.md's 8, the
distractors ("none of these") are apart from them, and a malformed file is refused with a message that says
where."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.classes import (
    OTHER,
    ClassesFileError,
    Distractor,
    LandmarkClass,
    load_classes,
    load_classes_file,
    load_distractors,
)
from core.settings import Settings

SHIPPED = Path(Settings.model_fields["classes_file"].default)

DESIGN_CLASSES = {
    "waterfalls_lakes": "Waterfalls and lakes",
    "pyramids": "Ancient pyramids",
    "colorful_mountains": "Colorful mountains",
    "moscow_kremlin": "Moscow Kremlin",
    "ancient_ruins": "Ancient ruins",
    "towers_skyscrapers": "Tall towers and skyscrapers",
    "cappadocia_balloons": "Cappadocia with balloons",
    "pillar_mountains": "Pillar mountains",
}
CYRILLIC = re.compile(r"^[А-Яа-яЁё ,\-]+$")


def test_shipped_classes_are_the_designs_eight() -> None:
    classes = load_classes(SHIPPED)
    assert [c.id for c in classes] == list(DESIGN_CLASSES)
    for landmark in classes:
        assert landmark.name == DESIGN_CLASSES[landmark.id]
        assert CYRILLIC.match(landmark.name_ru), landmark.name_ru
        assert len(landmark.prompts) >= 3
        assert len(set(landmark.prompts)) == len(landmark.prompts)
        assert all(p == p.strip() and p.isascii() for p in landmark.prompts)
        assert landmark.label() == {"id": landmark.id, "name": landmark.name, "name_ru": landmark.name_ru}


def test_shipped_prompts_are_not_shared_between_classes() -> None:
    prompts = [p for c in load_classes(SHIPPED) for p in c.prompts]
    assert len(prompts) == len(set(prompts))


SHIPPED_DISTRACTORS = {"people", "food", "animals", "rooms", "documents", "screenshots", "text", "vehicles"}


def test_shipped_distractors_cover_the_usual_non_landmark_photos() -> None:
    distractors = load_distractors(SHIPPED)
    ids = [d.id for d in distractors]
    assert set(ids) >= SHIPPED_DISTRACTORS
    assert len(ids) == len(set(ids))
    class_ids = {c.id for c in load_classes(SHIPPED)}
    class_prompts = {p for c in load_classes(SHIPPED) for p in c.prompts}
    assert not class_ids & set(ids) and OTHER.id not in class_ids | set(ids)
    for distractor in distractors:
        assert len(distractor.prompts) >= 3
        assert all(p == p.strip() and p.isascii() for p in distractor.prompts)
        assert not class_prompts & set(distractor.prompts), distractor.id


def test_the_other_answer_has_both_names() -> None:
    assert OTHER.label() == {"id": "other", "name": "None of these", "name_ru": "Ничего из этого"}
    assert CYRILLIC.match(OTHER.name_ru)


def test_a_file_without_distractors_has_none(tmp_path: Path) -> None:
    path = write(tmp_path, "classes:\n  - id: a\n    name: A\n    prompts: [x]\n")
    assert load_distractors(path) == []
    assert load_classes_file(path).classes == load_classes(path)


def test_distractors_load_stripped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "classes:\n  - id: a\n    name: A\n    prompts: [x]\n"
        "distractors:\n  - id: cats\n    prompts: [' a cat ', a kitten]\n  - id: food\n    prompts: [soup]\n",
    )
    assert load_distractors(path) == [
        Distractor("cats", ("a cat", "a kitten")),
        Distractor("food", ("soup",)),
    ]


def write(tmp_path: Path, text: str) -> Path:
    """A classes file with this text."""
    path = tmp_path / "classes.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_minimal_file_loads_and_name_ru_defaults_to_name(tmp_path: Path) -> None:
    path = write(
        tmp_path, "classes:\n  - id: lakes_2\n    name: ' Lakes '\n    prompts: [' a lake ', a pond]\n"
    )
    assert load_classes(path) == [LandmarkClass("lakes_2", "Lakes", "Lakes", ("a lake", "a pond"))]


GOOD = "  - id: a\n    name: A\n    prompts: [a photo of a]\n"
BAD_FILES = {
    "invalid yaml": ("classes: [\n", "is not valid YAML"),
    "empty file": ("", "expected a non-empty list under 'classes'"),
    "a list at the top": ("- id: a\n", "expected a non-empty list under 'classes'"),
    "no classes key": ("things: []\n", "expected a non-empty list under 'classes'"),
    "empty classes": ("classes: []\n", "expected a non-empty list under 'classes'"),
    "entry not a mapping": ("classes:\n  - just text\n", "class #1: expected a mapping"),
    "missing id": ("classes:\n  - name: A\n    prompts: [x]\n", "class #1: 'id' must be"),
    "bad id": ("classes:\n  - id: Bad-Id\n    name: A\n    prompts: [x]\n", "class #1: 'id' must be"),
    "numeric id": ("classes:\n  - id: 7\n    name: A\n    prompts: [x]\n", "class #1: 'id' must be"),
    "duplicate id": ("classes:\n" + GOOD + GOOD, "class #2: duplicate id 'a'"),
    "no prompts": ("classes:\n  - id: a\n    name: A\n", "class #1 (a): 'prompts' must be"),
    "empty prompts": (
        "classes:\n  - id: a\n    name: A\n    prompts: []\n",
        "class #1 (a): 'prompts' must be",
    ),
    "blank prompt": ("classes:\n  - id: a\n    name: A\n    prompts: [x, '  ']\n", "class #1 (a): 'prompts'"),
    "prompt not text": ("classes:\n  - id: a\n    name: A\n    prompts: [x, 3]\n", "class #1 (a): 'prompts'"),
    "prompts a string": ("classes:\n  - id: a\n    name: A\n    prompts: x\n", "class #1 (a): 'prompts'"),
    "missing name": (
        "classes:\n" + GOOD + "  - id: b\n    prompts: [x]\n",
        "class #2 (b): 'name' is required",
    ),
    "blank name": (
        "classes:\n  - id: a\n    name: ' '\n    prompts: [x]\n",
        "class #1 (a): 'name' is required",
    ),
    "class named other": (
        "classes:\n  - id: other\n    name: O\n    prompts: [x]\n",
        "class #1: the id 'other' is reserved",
    ),
    "distractors not a list": ("classes:\n" + GOOD + "distractors: cats\n", "'distractors' must be a list"),
    "distractor not a mapping": (
        "classes:\n" + GOOD + "distractors: [cats]\n",
        "distractor #1: expected a mapping",
    ),
    "distractor without id": (
        "classes:\n" + GOOD + "distractors:\n  - prompts: [x]\n",
        "distractor #1: 'id' must be",
    ),
    "distractor named other": (
        "classes:\n" + GOOD + "distractors:\n  - id: other\n    prompts: [x]\n",
        "distractor #1: the id 'other' is reserved",
    ),
    "distractor with a class's id": (
        "classes:\n" + GOOD + "distractors:\n  - id: a\n    prompts: [x]\n",
        "distractor #1: duplicate id 'a'",
    ),
    "duplicate distractor": (
        "classes:\n" + GOOD + "distractors:\n  - id: c\n    prompts: [x]\n  - id: c\n    prompts: [y]\n",
        "distractor #2: duplicate id 'c'",
    ),
    "distractor without prompts": (
        "classes:\n" + GOOD + "distractors:\n  - id: c\n    prompts: []\n",
        "distractor #1 (c): 'prompts' must be",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_malformed_files_are_refused_precisely(tmp_path: Path, case: str) -> None:
    text, fragment = BAD_FILES[case]
    path = write(tmp_path, text)
    with pytest.raises(ClassesFileError) as caught:
        load_classes(path)
    assert fragment in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ClassesFileError, match="cannot read the classes file"):
        load_classes(tmp_path / "nope.yaml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "classes.yaml"
    path.write_bytes(b"classes:\n  - id: a\n    name: \xff\xfe\n    prompts: [x]\n")
    with pytest.raises(ClassesFileError, match="not UTF-8"):
        load_classes(path)


def test_the_error_is_a_value_error() -> None:
    assert issubclass(ClassesFileError, ValueError)
