"""The revisited Oxford / Paris files: `gnd_roxford5k.pkl` / `gnd_rparis6k.pkl` and the images beside it.

The pickle is revisitop's: a dict with `imlist` (database image names, no extension), `qimlist` (query
names) and `gnd`, one dict per query with `bbx` (x1, y1, x2, y2), `easy`, `hard` and `junk` (0-based indices
into `imlist`). Images are `<images_dir>/<name>.jpg`, by default the `jpg/` folder beside the pickle (as
revisitop's `configdataset` lays it out). Queries are cropped to their box with PIL's `crop`, exactly as
revisitop's `example_process_images.py` does, and are not part of the database.

A pickle can run code when loaded, so only the types such a file holds (containers, numbers, numpy arrays)
are allowed; anything else is refused.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from eval.revisited import QueryGround

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class RevisitedFileError(ValueError):
    """The ground-truth pickle or its images are not what revisitop publishes; the message says what."""


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a ground-truth file")


@dataclass(frozen=True)
class RevisitedDataset:
    """A revisited dataset: its name, database and query names, ground truth and image folder."""

    name: str
    imlist: list[str]
    qimlist: list[str]
    gnd: list[QueryGround]
    images_dir: Path

    def database_path(self, index: int) -> Path:
        """The file of database image `index`."""
        return self.images_dir / f"{self.imlist[index]}.jpg"

    def query_path(self, index: int) -> Path:
        """The file of query `index` (uncropped)."""
        return self.images_dir / f"{self.qimlist[index]}.jpg"

    def query_image(self, index: int) -> Image.Image:
        """Query `index` as RGB, cropped to its box."""
        with Image.open(self.query_path(index)) as image:
            return image.convert("RGB").crop(self.gnd[index].bbx)

    def missing_images(self) -> list[Path]:
        """Database and query files that are not there."""
        paths = [self.database_path(i) for i in range(len(self.imlist))]
        paths += [self.query_path(i) for i in range(len(self.qimlist))]
        return [p for p in paths if not p.is_file()]


def _indices(value: Any, where: str, size: int) -> tuple[int, ...]:
    try:
        indices = tuple(int(i) for i in list(value))
    except (TypeError, ValueError) as err:
        raise RevisitedFileError(f"{where}: expected a list of database indices") from err
    if any(not 0 <= i < size for i in indices):
        raise RevisitedFileError(f"{where}: an index is outside the {size} database images")
    return indices


def load_revisited(gnd_path: Path, images_dir: Path | None = None) -> RevisitedDataset:
    """Read a `gnd_<name>.pkl` file; images default to the `jpg/` folder beside it."""
    gnd_path = Path(gnd_path)
    try:
        with gnd_path.open("rb") as handle:
            raw: Any = _DataOnlyUnpickler(handle).load()
    except OSError as err:
        raise RevisitedFileError(f"cannot read {gnd_path}: {err}") from err
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise RevisitedFileError(f"{gnd_path} is not a revisitop ground-truth pickle: {err}") from err
    if not isinstance(raw, dict) or not all(k in raw for k in ("imlist", "qimlist", "gnd")):
        raise RevisitedFileError(f"{gnd_path}: expected a dict with 'imlist', 'qimlist' and 'gnd'")
    imlist = [str(n) for n in raw["imlist"]]
    qimlist = [str(n) for n in raw["qimlist"]]
    if len(raw["gnd"]) != len(qimlist):
        raise RevisitedFileError(f"{gnd_path}: {len(raw['gnd'])} ground truths for {len(qimlist)} queries")
    gnd = []
    for i, entry in enumerate(raw["gnd"]):
        where = f"{gnd_path}: query {i} ({qimlist[i]})"
        if not isinstance(entry, dict):
            raise RevisitedFileError(f"{where}: expected a dict")
        try:
            x1, y1, x2, y2 = (float(v) for v in list(entry["bbx"]))
        except (KeyError, TypeError, ValueError) as err:
            raise RevisitedFileError(f"{where}: 'bbx' must be four numbers x1, y1, x2, y2") from err
        gnd.append(
            QueryGround(
                (x1, y1, x2, y2),
                easy=_indices(entry.get("easy", ()), f"{where} 'easy'", len(imlist)),
                hard=_indices(entry.get("hard", ()), f"{where} 'hard'", len(imlist)),
                junk=_indices(entry.get("junk", ()), f"{where} 'junk'", len(imlist)),
            )
        )
    name = gnd_path.stem.removeprefix("gnd_")
    return RevisitedDataset(
        name, imlist, qimlist, gnd, Path(images_dir) if images_dir else gnd_path.parent / "jpg"
    )
