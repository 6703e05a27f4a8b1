"""The metrics' deployment, checked without Docker: the opt-in Prometheus service and its scrape config, the
Grafana dashboard (every query names metrics and labels the app exports), and nginx, which never publishes
/metrics (a real nginx in front of a stub API when one is installed)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import api.metrics  # noqa: F401 - registers the HTTP metrics
import core.metrics  # noqa: F401
from api.metrics import METRICS_PATH
from tests.nginx_support import NativeNginx, StubApi, needs_nginx, session, template_text
from tests.test_compose import TOOLS

pytest_plugins = ["tests.nginx_support"]

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "wonders.json"
PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "avg",
    "rate",
    "increase",
    "histogram_quantile",
    "by",
    "without",
    "le",
    "count",
}


def exported() -> dict[str, set[str]]:
    """Every sample name the app exports, with its label names (histograms' _bucket/_sum/_count too)."""
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        kinds = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",)}.get(family.type, ("",))
        labels = {label for sample in family.samples for label in sample.labels}
        for suffix in kinds:
            names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def declared_labels() -> dict[str, set[str]]:
    """The label names of every wonders metric, from the definitions (children may not exist yet)."""
    labels: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):  # the registry has no public list
        names = getattr(collector, "_labelnames", None)
        if names is None or not getattr(collector, "_name", "").startswith("wonders_"):
            continue
        base = collector._name
        kind = collector._type
        suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",)}.get(kind, ("",))
        for suffix in suffixes:
            labels[base + suffix] = set(names) | ({"le"} if suffix == "_bucket" else set())
    return labels


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_prometheus_is_an_opt_in_service_that_publishes_nothing(compose: dict[str, Any]) -> None:
    service = compose["services"]["prometheus"]
    assert service["profiles"] == ["metrics"], "not started by a plain `docker compose up`"
    repository, _, tag = service["image"].rpartition(":")
    assert repository == "prom/prometheus" and re.fullmatch(r"v\d+\.\d+\.\d+", tag), service["image"]
    assert "ports" not in service
    assert service["depends_on"] == {"api": {"condition": "service_healthy"}}
    mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
    assert (REPO / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS
    assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]
    assert mounts["/prometheus"] in compose["volumes"]
    assert service["healthcheck"]["test"][0] == "CMD"


@pytest.mark.skipif(not TOOLS, reason="no compose tool (apt-get install docker-compose)")
def test_compose_renders_the_metrics_profile(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("QDRANT_API_KEY=test-key-not-secret\n")
    for tool in TOOLS:
        command = [*tool, "--env-file", str(env_file), "--project-directory", str(REPO)]
        command += ["--profile", "metrics", "-f", str(COMPOSE), "config"]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
        assert result.returncode == 0, result.stderr
        rendered = yaml.safe_load(result.stdout)["services"]["prometheus"]
        assert "ports" not in rendered


def test_prometheus_scrapes_the_api_over_the_compose_network(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == METRICS_PATH
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["api"] and sd["type"] == "A"
    api = compose["services"]["api"]
    assert str(sd["port"]) in [str(p) for p in api["expose"]]
    assert str(sd["port"]) == api["environment"]["PORT"]


def test_dashboard_queries_name_exported_metrics_and_labels() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"] == "Wonders"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
    known = exported() | declared_labels()
    used = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), expr
            metrics = set(re.findall(r"\bwonders_\w+", expr))
            assert metrics, expr
            for metric in metrics:
                assert metric in known, f"{panel['title']!r} queries {metric}, which the app does not export"
                used.add(metric.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count"))
            labels = set(re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr))
            labels |= set(re.findall(r"[{,]\s*(\w+)\s*=~?", expr))
            names = {n.strip() for group in labels for n in group.split(",") if n.strip()}
            for name in names - PROMQL_WORDS:
                assert any(name in known[m] for m in metrics), f"{expr}: no metric has the label {name!r}"
    for family in ("wonders_http_requests_total", "wonders_model_inference_seconds", "wonders_store_points"):
        assert family in used, f"the dashboard shows no {family}"


def test_nginx_template_answers_metrics_itself() -> None:
    text = template_text()
    block = re.search(r"location = /metrics \{(.*?)\n    \}", text, re.S)
    assert block, "nginx must answer /metrics itself"
    assert "return 404" in block.group(1) and "proxy_pass" not in block.group(1)
    assert '"code":"not_found"' in block.group(1)


@needs_nginx
def test_nginx_never_forwards_metrics(nginx_stub: NativeNginx, stub_api: StubApi) -> None:
    s = session()
    for path in ("/metrics", "/metrics?x=1"):
        response = s.get(f"{nginx_stub.url}{path}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert s.get(f"{nginx_stub.url}/api/health").status_code == 200
    assert not stub_api.requests_to("/metrics"), "nginx passed /metrics to the API"
