"""The fitted "none of these" threshold, `data/calibration.json`: written by `make eval`, read by classify
and ingest.

The threshold is a floor on the best class's confidence (softmax over the classes at CLIP's logit scale):
under it a photo is labelled `other`. It belongs to the model it was fitted with; a file fitted with another
model is not used (thresholds are per model and tower, see DESIGN.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CALIBRATION_FILE = "calibration.json"

# Used until `make eval` has fitted a value for this model. 0.25 is twice a uniform guess over the shipped
# 8 classes: under it the best class is barely ahead of chance, so the model cannot place the photo. With
# fewer classes (uniform >= 1/3) it never fires; with many more classes it is too strict, so fit it then.
DEFAULT_OTHER_THRESHOLD = 0.25


class CalibrationFileError(ValueError):
    """The calibration file exists but is not what `make eval` writes; the message says what is wrong."""


@dataclass(frozen=True)
class Calibration:
    """A fitted threshold, the model it was fitted with, and how it did on the labelled set."""

    threshold: float
    model: str
    fitted_at: str
    photos: int
    balanced_accuracy: float
    coverage: float
    accuracy_covered: float


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold in force and where it came from ("calibration" or "default", with the reason)."""

    value: float
    source: str


def calibration_path(data_dir: Path) -> Path:
    """Where the calibration file lives: `<DATA_DIR>/calibration.json`."""
    return Path(data_dir) / CALIBRATION_FILE


def read_calibration(path: Path) -> Calibration | None:
    """The calibration in `path`, None when there is none; CalibrationFileError when it is malformed."""
    try:
        raw: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CalibrationFileError(f"cannot read the calibration file {path}: {err}") from err
    if not isinstance(raw, dict):
        raise CalibrationFileError(f"{path}: expected a JSON object")
    threshold = raw.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise CalibrationFileError(f"{path}: 'threshold' must be a number from 0 to 1")
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        raise CalibrationFileError(f"{path}: 'model' must name the model the threshold was fitted with")
    try:
        return Calibration(
            threshold=float(threshold),
            model=model,
            fitted_at=str(raw.get("fitted_at", "")),
            photos=int(raw.get("photos", 0)),
            balanced_accuracy=float(raw.get("balanced_accuracy", float("nan"))),
            coverage=float(raw.get("coverage", float("nan"))),
            accuracy_covered=float(raw.get("accuracy_covered", float("nan"))),
        )
    except (TypeError, ValueError) as err:
        raise CalibrationFileError(f"{path}: {err}") from err


def write_calibration(path: Path, calibration: Calibration) -> None:
    """Write the calibration atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(calibration), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def other_threshold(data_dir: Path, model: str) -> ThresholdChoice:
    """The threshold classify and ingest use: the fitted one for this model, else the default."""
    path = calibration_path(data_dir)
    calibration = read_calibration(path)
    if calibration is None:
        return ThresholdChoice(DEFAULT_OTHER_THRESHOLD, "default (no calibration file)")
    if calibration.model != model:
        return ThresholdChoice(
            DEFAULT_OTHER_THRESHOLD, f"default ({path} was fitted with {calibration.model}, not {model})"
        )
    return ThresholdChoice(calibration.threshold, f"calibration ({path}, {calibration.fitted_at})")
