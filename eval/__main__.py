"""`make eval` (`python -m eval`): how good the answers are, on the user's own labelled photos.

    python -m eval [--labelled DIR] [--queries FILE] [--revisited gnd_roxford5k.pkl [--revisited-images DIR]]
                   [--precision int8 --precision fp32] [--out DIR] [--no-fit] [--quiet]

Without --labelled the labelled tree is IMAGES_DIR (laid out `<class_id>/...`, as `make dataset` writes it),
unless only --revisited is given.
Writes `data/eval/<time>/report.json`, `report.md` and the charts; with an `other/` folder also the fitted
"none of these" threshold to `data/calibration.json`. See README, section "Evaluation".
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.calibration import CalibrationFileError, calibration_path, write_calibration
from core.classes import ClassesFileError
from core.model import load_clip, resolve_precision
from core.settings import Settings, load_settings
from core.store import StoreError, StoreUnavailable, VectorStore, open_store
from eval.crosscheck import run_crosscheck
from eval.inputs import Inputs, read_inputs
from eval.labelled import LabelledTreeError
from eval.queries import QueriesFileError
from eval.report import eval_root, write_report
from eval.revisited_data import RevisitedFileError
from eval.run import LABELLED, PrecisionRun, measure_precision
from eval.summary import precision_summary

log = logging.getLogger("eval")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m eval", description="Measure Wonders' answers on labelled photos."
    )
    parser.add_argument("--labelled", type=Path, help="folder tree <class_id>/... (and other/)")
    parser.add_argument("--queries", type=Path, help="text queries, JSON Lines (README: Evaluation)")
    parser.add_argument(
        "--revisited", type=Path, action="append", default=[], help="gnd_roxford5k.pkl / gnd_rparis6k.pkl"
    )
    parser.add_argument(
        "--revisited-images",
        type=Path,
        action="append",
        default=[],
        help="the images of the n-th --revisited (default: jpg/ beside the pickle)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        action="append",
        default=[],
        help="also measure at this CLIP_PRECISION, side by side (repeatable)",
    )
    parser.add_argument("--out", type=Path, help="where the runs go (default DATA_DIR/eval)")
    parser.add_argument("--no-fit", action="store_true", help="do not fit nor write the threshold")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if len(args.revisited_images) > len(args.revisited):
        parser.error("--revisited-images given more often than --revisited")
    return args


def open_library(settings: Settings) -> tuple[VectorStore | None, str]:
    """The user's store to borrow stored vectors from, or None with the reason (e.g. held by the service)."""
    try:
        store = open_store(settings)
        store.ping()
        return store, "used"
    except StoreUnavailable as err:
        log.warning("the library's vectors are not used (every photo is encoded): %s", err)
        return None, "not reachable (a running service holds the embedded store?): every photo encoded"


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; 2 on bad inputs, 1 when the calibration file or a store fails."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    settings = load_settings()
    labelled = args.labelled
    if labelled is None and (args.queries is not None or not args.revisited):
        # The queries' relevant photos are library paths: the library is their database.
        labelled = settings.images_dir
    revisited = [
        (gnd, args.revisited_images[i] if i < len(args.revisited_images) else None)
        for i, gnd in enumerate(args.revisited)
    ]
    try:
        inputs = read_inputs(settings, labelled, args.queries, revisited)
    except (LabelledTreeError, QueriesFileError, RevisitedFileError, ClassesFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        report, run_dir = evaluate(settings, inputs, args)
    except (CalibrationFileError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(summary_lines(report))
    print(f"report: {run_dir / 'report.md'}")
    return 0


def evaluate(settings: Settings, inputs: Inputs, args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """Measure at the configured precision and every other asked for; write the report (and threshold)."""
    started = time.perf_counter()
    show = not args.quiet
    encoder = load_clip(settings)
    library, library_state = open_library(settings)
    try:
        main_run = measure_precision(settings, encoder, inputs, library, not args.no_fit, show_progress=show)
    finally:
        if library is not None:
            library.close()
    report: dict[str, Any] = {
        "settings": {
            "clip_model": settings.clip_model,
            "clip_precision": settings.clip_precision,
            "clip_device": settings.clip_device,
            "store": settings.store_kind,
            "library_vectors": library_state,
        },
        "model": {
            "name": encoder.model_name,
            "dim": encoder.dim,
            "image_size": encoder.identity.image_size,
            "device": encoder.device,
            "precision": encoder.precision,
            "logit_scale": float(encoder.logit_scale),
        },
        "inputs": inputs.describe(),
        **main_run.sections,
    }
    if main_run.fit is not None:
        photos = len(inputs.labels)
        write_calibration(
            calibration_path(settings.data_dir), main_run.fit.calibration(encoder.identity.model, photos)
        )
        report["threshold"]["written"] = True
    labelled = main_run.filled.get(LABELLED)
    if labelled is not None and labelled.ids:
        report["crosscheck"] = run_crosscheck(labelled.store, settings)
    threshold = report.get("classification", {}).get("threshold")
    runs = [main_run]
    for precision in dict.fromkeys(args.precision):
        if resolve_precision(precision, encoder.device) == encoder.precision:
            continue
        other = load_clip(settings.model_copy(update={"clip_precision": precision}))
        runs.append(measure_precision(settings, other, inputs, None, False, threshold, show))
        del other
        gc.collect()
    if len(runs) > 1:
        keys = [k for k in inputs.labels if labelled is not None and k in labelled.ids]
        report["precision"] = precision_summary(runs, keys)
    report["cost"] = cost(runs, time.perf_counter() - started)
    for run in runs:
        run.close()
    run_dir = write_report(args.out or eval_root(settings.data_dir), report)
    return report, run_dir


def cost(runs: list[PrecisionRun], seconds: float) -> dict[str, Any]:
    """What the run cost: photos encoded and their encoding time against the whole run's time."""
    encoded = sum(f.report.encoded for r in runs for f in r.filled.values())
    encode_s = sum(f.report.encode_seconds for r in runs for f in r.filled.values())
    return {
        "photos_encoded": encoded,
        "encode_seconds": round(encode_s, 3),
        "total_seconds": round(seconds, 3),
        "other_seconds": round(seconds - encode_s, 3),
        "per_precision_seconds": {r.precision: round(r.seconds, 3) for r in runs},
    }


def summary_lines(report: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    lines = []
    c = report.get("classification")
    if c:
        lines.append(
            f"classification: top-1 {c['top1_accuracy']:.3f}  top-3 {c['top3_accuracy']:.3f}  "
            f"balanced {c['balanced_accuracy']:.3f}  ECE {_num(c['calibration']['ece'])}"
        )
    t = report.get("threshold")
    if t:
        lines.append(
            f"'none of these' threshold fitted: {t['fitted']:.4f} (was {t['before']:.4f}); coverage "
            f"{t['coverage']:.3f}; written to calibration.json: run `make ingest` to relabel the library "
            "with it (a running service picks it up then)"
        )
    for language, m in (report.get("text_to_image") or {}).items():
        if language != "ru_en":
            lines.append(
                f"text -> image [{language}]: R@1 {_num(m['r@1'])}  R@10 {_num(m['r@10'])}  mAP {_num(m['map'])}"
            )
    i = report.get("image_to_image")
    if i:
        lines.append(f"image -> image (same class): mAP@100 {_num(i['map@100'])}  P@1 {_num(i['p@1'])}")
    for name, setups in (report.get("revisited") or {}).items():
        lines.append(
            f"{name}: mAP E {_num(setups['easy']['map'])}  M {_num(setups['medium']['map'])}  "
            f"H {_num(setups['hard']['map'])}"
        )
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) and np.isfinite(value) else "–"


if __name__ == "__main__":
    sys.exit(main())
