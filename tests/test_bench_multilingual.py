"""The bench's multilingual section runs end to end (tiny CLIP, the small M-CLIP stand-in, quick mode) and
reports what it measured, saying that the stand-in's figures are not the real model's; no timing asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_multilingual_bench_reports_both_towers_memory_and_mixed_load(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "CLIP_", "MULTILINGUAL_"))}
    env.update({"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)})
    command = [sys.executable, "-m", "bench", "--quick", "--model", "tiny", "--only", "multilingual"]
    command += ["--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet-wait", "0"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    section = json.loads((out / "latest.json").read_text())["multilingual"]
    assert "error" not in section, section.get("trace")
    assert section["real_size"] is False and "STAND-IN" in section["tower"]
    one = section["one_client"]
    assert one["russian_p50_ms"] > 0 and one["english_p50_ms"] > 0 and one["russian_over_english_p50"] > 0
    assert section["memory"]["param_mib"] > 0 and "bfloat16" in section["memory"]["dtypes"]
    load = section["concurrent"]
    assert load["errors"] == 0, load["error_samples"]
    assert load["requests"] == 16 and load["server_cpu_s_per_request"] > 0
    table = (out / "latest.md").read_text()
    assert "| multilingual | tower | SMALL STAND-IN" in table and "(stand-in)" in table
