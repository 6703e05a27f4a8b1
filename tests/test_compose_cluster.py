"""The 3-node Qdrant cluster override (docker-compose.cluster.yml), checked without a Docker engine: it
merges onto the stack, every node joins the first, the app creates collections replicated on 2 nodes,
and nothing of the cluster is published on the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings
from core.store.tuning import StoreTuning
from tests.test_compose import COMPOSE, SETTINGS_VARS, TOOLS, load, run_config, with_defaults

CLUSTER = Path(__file__).resolve().parent.parent / "docker-compose.cluster.yml"
NODES = ("qdrant", "qdrant-2", "qdrant-3")
P2P = 6335


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    return load(CLUSTER)


def flags(command: list[str]) -> dict[str, str]:
    """`./qdrant --flag value ...` as {flag: value}."""
    assert command[0] == "./qdrant"
    pairs = command[1:]
    assert len(pairs) % 2 == 0, command
    return {pairs[i]: pairs[i + 1] for i in range(0, len(pairs), 2)}


def test_three_nodes_found_one_cluster(cluster: dict[str, Any]) -> None:
    services = cluster["services"]
    assert {name for name in services if name.startswith("qdrant")} == set(NODES)
    first = flags(services["qdrant"]["command"])
    assert first == {"--uri": f"http://qdrant:{P2P}"}, "node 1 founds the cluster and joins nobody"
    for name in NODES[1:]:
        own = flags(services[name]["command"])
        assert own["--uri"] == f"http://{name}:{P2P}", "each node announces its own service name"
        assert own["--bootstrap"] == first["--uri"], "the others join node 1"
        assert services[name]["depends_on"] == {"qdrant": {"condition": "service_healthy"}}
    for name in NODES:
        env = services[name]["environment"]
        assert env["QDRANT__CLUSTER__ENABLED"] == "true"
        assert env["QDRANT__CLUSTER__P2P__PORT"] == str(P2P)
        assert env["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY:?"), "one key on every node"
        assert str(P2P) in services[name]["expose"]
        assert "ports" not in services[name], "peer port 6335 accepts writes: never publish it"
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])


def test_every_node_has_its_own_storage(cluster: dict[str, Any]) -> None:
    base = load(COMPOSE)
    volumes = {"qdrant": base["services"]["qdrant"]["volumes"]}
    volumes.update({name: cluster["services"][name]["volumes"] for name in NODES[1:]})
    storage = {}
    for name, entries in volumes.items():
        by_target = {entry.split(":")[1]: entry.split(":")[0] for entry in entries}
        assert by_target["/qdrant/config/production.yaml"] == "./qdrant/config.yaml"
        storage[name] = by_target["/qdrant/storage"]
    assert len(set(storage.values())) == 3, storage
    declared = set(base["volumes"]) | set(cluster["volumes"])
    assert set(storage.values()) <= declared


def test_app_creates_collections_replicated_over_the_cluster(cluster: dict[str, Any]) -> None:
    for service in ("api", "ingest"):
        env = cluster["services"][service]["environment"]
        assert set(env) <= SETTINGS_VARS, "only real settings"
        values = {name.lower(): with_defaults(str(value)) for name, value in env.items() if value is not None}
        tuning = StoreTuning.from_settings(Settings(_env_file=None, **values))  # type: ignore[call-arg, arg-type]
        assert tuning.replication_factor == 2
        assert tuning.replication_factor <= len(NODES)
        assert tuning.shards % len(NODES) == 0, "shards spread evenly over the nodes"
        assert 1 <= tuning.write_consistency <= tuning.replication_factor
        depends = cluster["services"][service]["depends_on"]
        assert depends == {name: {"condition": "service_healthy"} for name in NODES}


@pytest.mark.parametrize(
    "tool",
    TOOLS or [pytest.param((), marks=pytest.mark.skip(reason="no compose tool"), id="none")],
    ids=lambda t: " ".join(t) if t else "none",
)
def test_cluster_override_merges_onto_the_stack(tool: tuple[str, ...], tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("QDRANT_API_KEY=test-key-not-secret\n")
    result = run_config(tool, env_file, COMPOSE, CLUSTER)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {
        *NODES,
        "api",
        "web",
        "ingest",
        "prometheus",
    }  # prometheus: the opt-in metrics profile
    for name in NODES:
        node = services[name]
        assert node["environment"]["QDRANT__SERVICE__API_KEY"] == "test-key-not-secret"
        assert node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert "ports" not in node
        assert any(
            str(v).endswith(":/qdrant/storage:rw") or str(v).endswith(":/qdrant/storage")
            for v in node["volumes"]
        )
    # Node 1 keeps the base file's name, volumes and config, so the app's QDRANT_URL still points at it.
    assert services["api"]["environment"]["QDRANT_URL"] == "http://qdrant:6333"
    assert services["api"]["environment"]["QDRANT_REPLICATION_FACTOR"] == "2"
    assert services["ingest"]["environment"]["QDRANT_SHARDS"] == "6"
    (port,) = services["web"]["ports"]
    published = port if isinstance(port, str) else f"{port['published']}:{port['target']}"
    assert published.removeprefix("0.0.0.0:") == "8080:80"


@pytest.mark.parametrize(
    "tool",
    TOOLS or [pytest.param((), marks=pytest.mark.skip(reason="no compose tool"), id="none")],
    ids=lambda t: " ".join(t) if t else "none",
)
def test_cluster_override_refuses_without_an_api_key(tool: tuple[str, ...], tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# no key\n")
    result = run_config(tool, env_file, COMPOSE, CLUSTER)
    assert result.returncode != 0 or not result.stdout.strip()
    assert "set QDRANT_API_KEY in .env" in result.stderr
