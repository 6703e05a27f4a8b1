"""The evaluation report: `data/eval/<time>/report.json`, `report.md` and the PNG charts, with a comparison
against the previous run.

The report is a JSON object. Part of it has a fixed shape that the charts and the UI read:

    {"created_at": "...", "settings": {...}, "model": {...},
     "classification": {                                # eval.classification.classification_section
         "confusion_matrix": {"labels": [...], "matrix": [[...]]},
         "calibration": {"ece": x, "bins": [{"low", "high", "count", "mean_confidence", "accuracy"}]},
         "prompts": {"ensemble_accuracy": x, "rows": [...]},   # eval.prompts.prompts_section
         ...},
     ...any other sections: text_to_image, image_to_image, revisited, crosscheck, precision}

`write_report` adds `charts` (the PNG file names it drew) and `previous` (the run compared against and the
numbers that changed). NaN (a measure with nothing to measure) is written as null.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval import charts

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CHARTS = {
    "confusion_matrix": (
        "confusion_matrix.png",
        ("classification", "confusion_matrix"),
        charts.confusion_matrix_png,
    ),
    "reliability": ("reliability.png", ("classification", "calibration"), charts.reliability_png),
    "prompts": ("prompts.png", ("classification", "prompts"), charts.prompts_png),
}
# Keys whose numbers describe the run, not its quality: never listed as changes.
_NOT_COMPARED = {
    "settings",
    "model",
    "charts",
    "previous",
    "created_at",
    "bins",
    "confusion_matrix",
    "rows",
    "inputs",
    "photos",
    "cost",
    "build_seconds",
    "photos_encoded",
    "encode_images_per_s",
}


def eval_root(data_dir: Path) -> Path:
    """Where the runs live: `<DATA_DIR>/eval`."""
    return Path(data_dir) / "eval"


def new_run_dir(root: Path, now: datetime | None = None) -> Path:
    """A new folder `<root>/<UTC time>` (a suffix when two runs start in the same second)."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"too many runs named {stamp} in {root}")


def latest_report(root: Path, before: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The newest run with a readable report (older than `before` when given), and its JSON."""
    if not Path(root).is_dir():
        return None
    runs = sorted((p for p in Path(root).iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
    for run in runs:
        if before is not None and run.name >= before.name:
            continue
        try:
            data = json.loads((run / REPORT_JSON).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return run, data
    return None


def flatten_numbers(report: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every number of the report's quality sections under a dotted key (lists and run facts left out)."""
    flat: dict[str, float] = {}
    for key, value in report.items():
        if key in _NOT_COMPARED:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_numbers(value, name + "."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            flat[name] = float(value)
    return flat


def compare(current: Mapping[str, Any], previous: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The measures both runs have, with the previous value, the current one and the change."""
    now, before = flatten_numbers(current), flatten_numbers(previous)
    return [
        {"measure": key, "previous": before[key], "current": now[key], "change": now[key] - before[key]}
        for key in sorted(now.keys() & before.keys())
    ]


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null; tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _section(report: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    value: Any = report
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def write_report(root: Path, report: Mapping[str, Any], now: datetime | None = None) -> Path:
    """Write report.json, report.md and the charts into a new run folder under `root`; return the folder."""
    moment = now or datetime.now(UTC)
    previous = latest_report(root)
    run = new_run_dir(root, moment)
    body: dict[str, Any] = {"created_at": moment.astimezone(UTC).isoformat(timespec="seconds"), **report}
    drawn = {}
    for name, (file_name, keys, draw) in CHARTS.items():
        section = _section(body, keys)
        if isinstance(section, Mapping):
            draw(run / file_name, dict(_json_safe(section)))
            drawn[name] = file_name
    body["charts"] = drawn
    body["previous"] = (
        {"run": previous[0].name, "changes": compare(body, previous[1])} if previous is not None else None
    )
    safe = _json_safe(body)
    _write_atomic(run / REPORT_JSON, json.dumps(safe, indent=2, ensure_ascii=False) + "\n")
    _write_atomic(run / REPORT_MD, render_markdown(safe))
    return run


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- Markdown -------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _render(title: str, value: Any, depth: int) -> list[str]:
    """A section: its scalars as a table, a mapping of same-shaped mappings as one table, lists of
    mappings as tables, the rest as subsections."""
    lines = [f"{'#' * min(depth, 6)} {title}", ""]
    if _is_scalar(value):
        return [*lines, _cell(value), ""]
    if isinstance(value, list):
        if value and all(isinstance(v, Mapping) for v in value):
            header = list(dict.fromkeys(k for v in value for k in v))
            return lines + _table(header, [[v.get(k) for k in header] for v in value])
        return [*lines, ", ".join(_cell(v) for v in value), ""]
    scalars = {k: v for k, v in value.items() if _is_scalar(v)}
    if scalars:
        lines += _table(["measure", "value"], [[k, v] for k, v in scalars.items()])
    nested = {k: v for k, v in value.items() if not _is_scalar(v)}
    if nested and all(
        isinstance(v, Mapping) and all(_is_scalar(x) for x in v.values()) for v in nested.values()
    ):
        header = list(dict.fromkeys(k for v in nested.values() for k in v))
        return lines + _table(["", *header], [[k, *[v.get(h) for h in header]] for k, v in nested.items()])
    for key, sub in nested.items():
        if key == "confusion_matrix" and isinstance(sub, Mapping) and "labels" in sub:
            labels = list(sub["labels"])
            lines += [f"{'#' * min(depth + 1, 6)} confusion matrix (rows: truth, columns: answer)", ""]
            lines += _table(
                ["", *labels], [[label, *row] for label, row in zip(labels, sub["matrix"], strict=True)]
            )
        else:
            lines += _render(key, sub, depth + 1)
    return lines


def render_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown form of a (JSON-safe) report: its sections, charts and the changes since last time."""
    lines = [f"# Wonders evaluation, {report.get('created_at', '')}", ""]
    for key, value in report.items():
        if key in ("created_at", "charts", "previous"):
            continue
        lines += _render(key, value, 2)
    chart_files = report.get("charts") or {}
    if chart_files:
        lines += ["## Charts", ""]
        lines += [f"![{name}]({file})" for name, file in chart_files.items()] + [""]
    previous = report.get("previous")
    lines += ["## Since the previous run", ""]
    if not previous:
        lines += ["This is the first run.", ""]
    else:
        changes = [c for c in previous["changes"] if c["change"]]
        lines += [
            f"Compared with run {previous['run']}: {len(changes)} of {len(previous['changes'])} measures changed.",
            "",
        ]
        if changes:
            lines += _table(
                ["measure", "previous", "now", "change"],
                [[c["measure"], c["previous"], c["current"], f"{c['change']:+.4f}"] for c in changes],
            )
    return "\n".join(lines).rstrip() + "\n"
