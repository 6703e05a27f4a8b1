"""The eval inputs: the labelled folder tree, the queries file, and revisitop's ground-truth pickle with
its images (queries cropped to their box, unsafe pickles refused)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval.labelled import LabelledTreeError, read_labelled_tree
from eval.queries import QueriesFileError, language_pairs, read_queries
from eval.revisited_data import RevisitedFileError, load_revisited
from tests.image_factory import jpeg_bytes, photo, write

# -- the labelled tree --------------------------------------------------------------------------------


def test_the_tree_gives_each_photo_its_folders_label(tmp_path: Path) -> None:
    for name in (
        "lake/a.jpg",
        "lake/deeper/b.png",
        "tower/c.jpg",
        "other/cat.jpg",
        "bikes/d.jpg",
        "loose.jpg",
    ):
        write(tmp_path / name, jpeg_bytes(photo(1)))
    write(tmp_path / "lake" / "notes.txt", b"not a photo")
    labelled = read_labelled_tree(tmp_path, ["lake", "tower", "ruins"])
    assert [(p.path.relative_to(tmp_path).as_posix(), p.label) for p in labelled.photos] == [
        ("lake/a.jpg", "lake"),
        ("lake/deeper/b.png", "lake"),
        ("other/cat.jpg", "other"),
        ("tower/c.jpg", "tower"),
    ]
    assert labelled.unknown_folders == ["bikes"] and labelled.loose_files == ["loose.jpg"]
    assert labelled.has_other and labelled.counts() == {"lake": 2, "other": 1, "tower": 1}


def test_a_tree_without_other_cannot_fit_a_threshold(tmp_path: Path) -> None:
    write(tmp_path / "lake" / "a.jpg", jpeg_bytes(photo(1)))
    assert not read_labelled_tree(tmp_path, ["lake"]).has_other


def test_an_empty_or_missing_tree_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LabelledTreeError, match="does not exist"):
        read_labelled_tree(tmp_path / "nope", ["lake"])
    write(tmp_path / "bikes" / "a.jpg", jpeg_bytes(photo(1)))
    with pytest.raises(LabelledTreeError, match="no photos under"):
        read_labelled_tree(tmp_path, ["lake"])


# -- the queries file --------------------------------------------------------------------------------


def write_lines(path: Path, *lines: object) -> Path:
    """A JSON Lines file of these objects (strings are written as they are)."""
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8"
    )
    return path


def test_queries_are_read_with_defaults_and_grouped(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "q.jsonl",
        "# a comment",
        {"query": " waterfalls ", "relevant": ["w/b.jpg", "w/a.jpg", "w/a.jpg"]},
        "",
        {"query": "водопады", "language": "RU", "relevant": ["w/a.jpg", "w/b.jpg"]},
        {"query": "towers", "language": "en", "relevant": ["t\\x.jpg"], "group": 7},
        {"query": "башни", "language": "ru", "relevant": ["t/y.jpg"], "group": "7"},
        {"query": "ruins", "relevant": ["r/z.jpg"]},
    )
    queries = read_queries(path)
    assert [(q.text, q.language, q.relevant, q.line) for q in queries] == [
        ("waterfalls", "en", ("w/a.jpg", "w/b.jpg"), 2),
        ("водопады", "ru", ("w/a.jpg", "w/b.jpg"), 4),
        ("towers", "en", ("t/x.jpg",), 5),
        ("башни", "ru", ("t/y.jpg",), 6),
        ("ruins", "en", ("r/z.jpg",), 7),
    ]
    pairs = language_pairs(queries)
    assert [(ru.text, en.text) for ru, en in pairs] == [("водопады", "waterfalls"), ("башни", "towers")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not a JSON object"),
        ("[1, 2]", "expected a JSON object"),
        ({"relevant": ["a.jpg"]}, "'query' must be a non-empty text"),
        ({"query": "  ", "relevant": ["a.jpg"]}, "'query' must be a non-empty text"),
        ({"query": "x"}, "'relevant' must be a non-empty list"),
        ({"query": "x", "relevant": []}, "'relevant' must be a non-empty list"),
        ({"query": "x", "relevant": ["a.jpg", 3]}, "'relevant' must be a non-empty list"),
        ({"query": "x", "relevant": ["a.jpg"], "language": 5}, "'language' must be a text"),
        ({"query": "x", "relevant": ["a.jpg"], "group": [1]}, "'group' must be a text or a number"),
    ],
)
def test_a_bad_line_is_named(tmp_path: Path, line: object, message: str) -> None:
    path = write_lines(tmp_path / "q.jsonl", {"query": "fine", "relevant": ["a.jpg"]}, line)
    with pytest.raises(QueriesFileError, match=message) as caught:
        read_queries(path)
    assert f"{path}:2" in str(caught.value)


def test_an_empty_or_missing_queries_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(QueriesFileError, match="cannot read"):
        read_queries(tmp_path / "nope.jsonl")
    with pytest.raises(QueriesFileError, match="no queries"):
        read_queries(write_lines(tmp_path / "q.jsonl", "# only a comment"))


# -- revisitop's ground truth -------------------------------------------------------------------------


def tiny_revisited(root: Path, arrays: bool = True) -> Path:
    """A 4-image database and 2 queries in revisitop's layout: gnd_tiny5k.pkl beside jpg/."""
    (root / "jpg").mkdir(exist_ok=True)
    for i, name in enumerate(["db0", "db1", "db2", "db3", "q0", "q1"]):
        photo(i, (64, 48)).save(root / "jpg" / f"{name}.jpg")
    as_list = (lambda v: np.asarray(v, dtype=np.int64)) if arrays else list
    gnd = {
        "imlist": ["db0", "db1", "db2", "db3"],
        "qimlist": ["q0", "q1"],
        "gnd": [
            {
                "bbx": np.array([4.4, 2.0, 40.6, 30.0]),
                "easy": as_list([0]),
                "hard": as_list([1]),
                "junk": as_list([3]),
            },
            {"bbx": [0.0, 0.0, 10.0, 10.0], "easy": as_list([2]), "hard": as_list([]), "junk": as_list([])},
        ],
    }
    path = root / "gnd_tiny5k.pkl"
    path.write_bytes(pickle.dumps(gnd))
    return path


@pytest.mark.parametrize("arrays", [True, False])
def test_the_ground_truth_and_images_load(tmp_path: Path, arrays: bool) -> None:
    dataset = load_revisited(tiny_revisited(tmp_path, arrays))
    assert dataset.name == "tiny5k" and dataset.imlist == ["db0", "db1", "db2", "db3"]
    assert dataset.gnd[0].easy == (0,) and dataset.gnd[0].hard == (1,) and dataset.gnd[0].junk == (3,)
    assert dataset.gnd[1].hard == () and dataset.gnd[0].bbx == (4.4, 2.0, 40.6, 30.0)
    assert dataset.database_path(2) == tmp_path / "jpg" / "db2.jpg"
    assert dataset.missing_images() == []
    crop = dataset.query_image(0)
    # PIL's crop of the float box, as revisitop does it.
    with Image.open(tmp_path / "jpg" / "q0.jpg") as original:
        expected = original.convert("RGB").crop((4.4, 2.0, 40.6, 30.0))
    assert crop.size == expected.size == (37, 28)
    assert np.array_equal(np.asarray(crop), np.asarray(expected))


def test_images_may_live_elsewhere_and_missing_ones_are_listed(tmp_path: Path) -> None:
    dataset = load_revisited(tiny_revisited(tmp_path), images_dir=tmp_path / "elsewhere")
    assert dataset.query_path(1) == tmp_path / "elsewhere" / "q1.jpg"
    assert len(dataset.missing_images()) == 6  # they are in jpg/, not there


class _Boom:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (pickle.dumps({"imlist": [], "qimlist": [], "gnd": [_Boom()]}), "not allowed"),
        (pickle.dumps([1, 2]), "expected a dict with"),
        (pickle.dumps({"imlist": ["a"], "qimlist": ["q"], "gnd": []}), "0 ground truths for 1 queries"),
        (pickle.dumps({"imlist": ["a"], "qimlist": ["q"], "gnd": [{"bbx": [1, 2]}]}), "'bbx' must be four"),
        (
            pickle.dumps({"imlist": ["a"], "qimlist": ["q"], "gnd": [{"bbx": [0, 0, 1, 1], "easy": [1]}]}),
            "outside the 1 database images",
        ),
        (b"garbage", "not a revisitop ground-truth pickle"),
    ],
)
def test_a_bad_ground_truth_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "gnd_bad.pkl"
    path.write_bytes(content)
    with pytest.raises(RevisitedFileError, match=message):
        load_revisited(path)
