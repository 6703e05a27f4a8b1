"""Calibrate the near-duplicate rule on real sample photos: `python -m bench.dedup_calibration`.

For every edit of `devtools/sample_photos.py` it measures the perceptual-hash distance (core/phash.py,
crop-aware, 256 bits) between each sample photo and its edited copy, then between every two different
photos and between the two views of a stereo pair (the same scene, not a duplicate). It prints the table
and the margin around `search/duplicates.py MAX_BITS`.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass

from core.phash import distance, fingerprint, hamming
from devtools.sample_photos import EDITS, OFF_CENTRE_CROPS, sample_photos, stereo_pair
from search.duplicates import MAX_BITS


@dataclass
class Row:
    """Distances of one kind of pair: crop-aware, and of the whole-photo hashes alone."""

    name: str
    crop_aware: list[int]
    whole: list[int]


def measure() -> tuple[list[Row], list[Row], Row, Row]:
    """(one row per duplicate edit, per off-centre crop, different photos, the stereo pair)."""
    photos = sample_photos()
    prints = {name: fingerprint(image) for name, image in photos.items()}
    rows: dict[str, list[Row]] = {"same": [], "off": []}
    for kind, edits in (("same", EDITS), ("off", OFF_CENTRE_CROPS)):
        for edit_name, edit in edits.items():
            aware, whole = [], []
            for name, image in photos.items():
                copy = fingerprint(edit(image))
                aware.append(distance(prints[name], copy))
                whole.append(hamming(prints[name].whole, copy.whole))
            rows[kind].append(Row(edit_name, aware, whole))
    pairs = list(itertools.combinations(prints.values(), 2))
    different = Row(
        f"different photos ({len(pairs)} pairs)",
        [distance(a, b) for a, b in pairs],
        [hamming(a.whole, b.whole) for a, b in pairs],
    )
    left, right = (fingerprint(i) for i in stereo_pair())
    stereo = Row(
        "stereo pair (same scene, a step aside)", [distance(left, right)], [hamming(left.whole, right.whole)]
    )
    return rows["same"], rows["off"], different, stereo


def report(rows: list[Row], off_centre: list[Row], different: Row, stereo: Row) -> str:
    """The markdown table and the margins."""
    lines = [
        "| pair | crop-aware bits (min-max) | whole-photo bits (min-max) |",
        "|---|---|---|",
    ]
    for row in [*rows, *[Row(f"{r.name} (not a duplicate here)", r.crop_aware, r.whole) for r in off_centre]]:
        lines.append(
            f"| {row.name} | {min(row.crop_aware)}-{max(row.crop_aware)} | {min(row.whole)}-{max(row.whole)} |"
        )
    for row in (different, stereo):
        lines.append(
            f"| {row.name} | {min(row.crop_aware)}-{max(row.crop_aware)} | {min(row.whole)}-{max(row.whole)} |"
        )
    worst_same = max(max(r.crop_aware) for r in rows)
    closest_other = min(min(different.crop_aware), min(stereo.crop_aware))
    found = sum(d <= MAX_BITS for r in rows for d in r.crop_aware)
    total = sum(len(r.crop_aware) for r in rows)
    lines.append("")
    lines.append(
        f"MAX_BITS = {MAX_BITS} of 256: edited copies found {found}/{total} (worst {worst_same}); "
        f"closest non-duplicate {closest_other} (stereo {min(stereo.crop_aware)}, different photos "
        f"{min(different.crop_aware)}); {sum(d <= MAX_BITS for d in different.crop_aware + stereo.crop_aware)} "
        "non-duplicates under the bar"
    )
    return "\n".join(lines)


def main() -> int:
    """Print the calibration."""
    print(report(*measure()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
