"""The latest evaluation report as the API serves it: the report's JSON and its charts by run and chart
name, so no part of a request ever becomes a path (runs are only the folder names `make eval` writes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from eval.report import CHARTS, eval_root, latest_report

# What `eval.report.new_run_dir` names a run: UTC time, and a suffix for a second run in the same second.
RUN_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z(-[0-9]{1,3})?$")


def chart_url(run: str, name: str) -> str:
    """Where a client fetches one chart of a run."""
    return f"/api/eval/runs/{run}/charts/{name}"


def latest_published(data_dir: Path) -> dict[str, Any] | None:
    """{"run", "created_at", "charts": {name: url}, "report"} of the newest readable run, or None."""
    found = latest_report(eval_root(data_dir))
    if found is None:
        return None
    run, report = found
    charts = report.get("charts")
    drawn: dict[str, Any] = charts if isinstance(charts, dict) else {}
    return {
        "run": run.name,
        "created_at": report.get("created_at"),
        "charts": {name: chart_url(run.name, name) for name in CHARTS if name in drawn},
        "report": report,
    }


def chart_file(data_dir: Path, run: str, name: str) -> Path | None:
    """The PNG of chart `name` of run `run`, or None when either is unknown or the file is not there."""
    if not RUN_NAME.fullmatch(run) or name not in CHARTS:
        return None
    path = eval_root(data_dir) / run / CHARTS[name][0]
    return path if path.is_file() else None
