"""`python -m ingest --part i/n`: every photo in exactly one part, the same split on every run, and n
part runs into one store give what one whole run gives."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.model import ClipModel
from core.settings import Settings
from core.store import IMAGES, open_store
from ingest.__main__ import main as ingest_main
from ingest.parts import Part, parse_part
from ingest.pipeline import run_ingest
from tests.image_factory import jpeg_bytes, photo, write

REPO = Path(__file__).resolve().parent.parent
HASHES = [hashlib.sha256(f"photo {i}".encode()).hexdigest() for i in range(3000)]


def test_parse_part() -> None:
    assert parse_part("2/4") == Part(2, 4)
    assert parse_part(" 1 / 1 ") == Part(1, 1)
    for bad in ("0/3", "4/3", "1/0", "3", "a/b", "-1/3", "1/3/4", ""):
        with pytest.raises(ValueError):
            parse_part(bad)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_every_photo_is_in_exactly_one_part(count: int) -> None:
    parts = [Part(i, count) for i in range(1, count + 1)]
    sizes = [0] * count
    for sha in HASHES:
        owners = [p.index for p in parts if p.holds(sha)]
        assert len(owners) == 1, (sha, owners)
        sizes[owners[0] - 1] += 1
    expected = len(HASHES) / count
    assert all(0.85 * expected <= size <= 1.15 * expected for size in sizes), sizes


def test_the_rule_is_the_hash_prefix_modulo_n() -> None:
    """The split must never change between versions: jobs of one fill may run different versions."""
    five = "0000000000000005" + "f" * 48
    assert [Part(i, 4).holds(five) for i in range(1, 5)] == [False, True, False, False]
    empty_file = hashlib.sha256(b"").hexdigest()  # e3b0c44298fc1c14...
    assert int("e3b0c44298fc1c14", 16) % 3 == 1
    assert Part(2, 3).holds(empty_file) and not Part(1, 3).holds(empty_file)


def test_the_split_is_the_same_in_another_process() -> None:
    script = (
        "import json, sys; from ingest.parts import Part; "
        "hashes = json.load(sys.stdin); "
        "print(json.dumps([[i for i in range(1, 6) if Part(i, 5).holds(h)][0] for h in hashes]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    sample = HASHES[:300]
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(sample),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=True,
        timeout=60,
    )
    here = [next(i for i in range(1, 6) if Part(i, 5).holds(h)) for h in sample]
    assert json.loads(result.stdout) == here


def test_part_runs_fill_one_store_exactly(
    settings: Settings, make_settings: object, encoder: ClipModel, tmp_path: Path
) -> None:
    for i in range(12):
        write(settings.images_dir / f"f{i % 3}" / f"p{i:02d}.jpg", jpeg_bytes(photo(300 + i, (96, 72))))
    whole_settings = make_settings(data_dir=tmp_path / "whole")  # type: ignore[operator]
    whole = open_store(whole_settings)
    try:
        run_ingest(whole_settings, encoder, whole, show_progress=False)
        expected = {p.id: p.payload["sha256"] for p in whole.scroll(IMAGES)}
    finally:
        whole.close()
    assert len(expected) == 12

    store = open_store(settings)
    try:
        seen: dict[str, int] = {}
        for index in (1, 2, 3):
            part = Part(index, 3)
            report = run_ingest(settings, encoder, store, show_progress=False, part=part)
            ids = {p.id for p in store.scroll(IMAGES)} - set(seen)
            assert report.new == len(ids)
            assert all(part.holds(expected[i]) for i in ids), "a part took another part's photo"
            seen.update(dict.fromkeys(ids, index))
        assert set(seen) == set(expected), "the parts together are the whole library"
        assert len(set(seen.values())) == 3, "each part had photos of its own"
        again = run_ingest(settings, encoder, store, show_progress=False, part=Part(2, 3))
        assert again.new == 0 and again.already_indexed == sum(1 for v in seen.values() if v == 2)
    finally:
        store.close()


def test_cli_refuses_a_bad_part(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        ingest_main(["--part", "4/3"])
    assert caught.value.code == 2
    assert "1 <= i <= n" in capsys.readouterr().err
