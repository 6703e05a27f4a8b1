"""The compose stack, checked without a Docker engine.

- docker-compose.yml and docker-compose.gpu.yml parse, and `docker compose config` (v2) or `docker-compose
  config` (Debian's v1) accepts them with a QDRANT_API_KEY and refuses them without one;
- what they pass to the app is what the app reads (core/settings.py, api/gunicorn_conf.py), every host path
  they mount exists, only web publishes a port, images are pinned, healthchecks exist and actually work
  (run here against stand-in servers and the real gunicorn);
- the Dockerfile is multi-stage, non-root, installs dependencies before copying code, keeps the Hugging
  Face cache on a volume; .dockerignore keeps secrets and data out of the build context.

The compose tool comes from Debian (apt-get install docker-compose); those tests skip where none is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
COMPOSE_GPU = REPO / "docker-compose.gpu.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
QDRANT_CONFIG = REPO / "qdrant" / "config.yaml"

APP_SERVICES = ("api", "ingest")
# Variables that configure the platform rather than the app: gunicorn itself (its own settings, outside
# api/gunicorn_conf.py) and the Hugging Face cache.
INFRA_VARS = {"FORWARDED_ALLOW_IPS", "HF_HOME", "HF_HUB_OFFLINE"}
SETTINGS_VARS = {name.upper() for name in Settings.model_fields}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def gpu() -> dict[str, Any]:
    return load(COMPOSE_GPU)


def with_defaults(value: str) -> str:
    """A compose value with each ${VAR:-default} replaced by its default (and ${VAR} by nothing)."""

    def repl(match: re.Match[str]) -> str:
        return match.group(3) if match.group(2) == "-" else ""

    return INTERPOLATION.sub(repl, value)


# ---------------------------------------------------------------------------------------------------------
# The compose tool


def compose_tools() -> list[tuple[str, ...]]:
    """The compose implementations installed here: v2 (`docker compose`) and/or `docker-compose`."""
    tools: list[tuple[str, ...]] = []
    for cmd in (("docker", "compose"), ("docker-compose",)):
        if shutil.which(cmd[0]) is None:
            continue
        try:
            probe = subprocess.run([*cmd, "version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            tools.append(cmd)
    return tools


TOOLS = compose_tools()
tool_param = pytest.mark.parametrize(
    "tool",
    TOOLS
    or [
        pytest.param(
            (), marks=pytest.mark.skip(reason="no compose tool (apt-get install docker-compose)"), id="none"
        )
    ],
    ids=lambda t: " ".join(t) if t else "none",
)


def run_config(tool: tuple[str, ...], env_file: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    """`compose config` for `files`, with only `env_file` as .env and no QDRANT_*/COMPOSE_* from our env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "COMPOSE_"))}
    file_args = [arg for f in files for arg in ("-f", str(f))]
    command = [*tool, "--env-file", str(env_file), "--project-directory", str(REPO), "--profile", "ingest"]
    command += [*file_args, "config"]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


@tool_param
@pytest.mark.parametrize("files", [(COMPOSE,), (COMPOSE, COMPOSE_GPU)], ids=["cpu", "gpu"])
def test_compose_config_validates_with_an_api_key(
    tool: tuple[str, ...], files: tuple[Path, ...], tmp_path: Path
) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("QDRANT_API_KEY=test-key-not-secret\n")
    result = run_config(tool, env_file, *files)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    services = rendered["services"]
    # The opt-in prometheus (profile "metrics") shows with compose tools that ignore profiles in `config`.
    assert set(services) - {"prometheus"} == {"qdrant", "api", "web", "ingest"}
    assert services["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"] == "test-key-not-secret"
    for name in APP_SERVICES:
        assert services[name]["environment"]["QDRANT_API_KEY"] == "test-key-not-secret"
        expected_device = "cuda" if COMPOSE_GPU in files else "cpu"
        assert services[name]["environment"]["CLIP_DEVICE"] == expected_device
    (port,) = services["web"]["ports"]
    published = port if isinstance(port, str) else f"{port['published']}:{port['target']}"
    assert published.removeprefix("0.0.0.0:") == "8080:80"


@tool_param
def test_compose_config_refuses_without_an_api_key(tool: tuple[str, ...], tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# no QDRANT_API_KEY\n")
    result = run_config(tool, env_file, COMPOSE)
    # Some wrappers of compose v2 lose its exit code; no rendered file is the refusal then.
    assert result.returncode != 0 or not result.stdout.strip()
    assert "set QDRANT_API_KEY in .env" in result.stderr


# ---------------------------------------------------------------------------------------------------------
# What the services get


def test_services(compose: dict[str, Any]) -> None:
    # prometheus is opt-in (profile "metrics"), checked by tests/test_metrics_deploy.py.
    assert set(compose["services"]) == {"qdrant", "api", "web", "ingest", "prometheus"}
    assert "version" not in compose  # obsolete in the compose specification, and warned about


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_env_vars_are_real_settings(compose: dict[str, Any], gpu: dict[str, Any], service: str) -> None:
    allowed = SETTINGS_VARS | INFRA_VARS
    for source in (compose, gpu):
        env = source["services"][service].get("environment", {})
        assert isinstance(env, dict), "use the mapping form, so that override files merge"
        unknown = set(env) - allowed
        assert not unknown, f"{service} gets variables the app does not read: {sorted(unknown)}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_env_defaults_are_valid_settings(
    compose: dict[str, Any], gpu: dict[str, Any], service: str
) -> None:
    """With nothing in .env but the key, the values compose gives are accepted by Settings (CPU and GPU)."""
    overrides: list[dict[str, Any]] = [{}, gpu["services"][service].get("environment", {})]
    for override in overrides:
        env = {**compose["services"][service]["environment"], **override}
        values = {
            name.lower(): with_defaults(str(value))
            for name, value in env.items()
            if name in SETTINGS_VARS and value is not None
        }
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]
        assert settings.qdrant_url == "http://qdrant:6333"
        assert settings.store_kind == "server"
        assert settings.max_upload_mb == Settings.model_fields["max_upload_mb"].default


def test_gunicorn_vars_are_settings_its_config_reads(compose: dict[str, Any]) -> None:
    passed = {name for name in compose["services"]["api"]["environment"] if name.startswith("GUNICORN_")}
    assert passed and passed <= SETTINGS_VARS
    assert "WEB_CONCURRENCY" in SETTINGS_VARS
    assert with_defaults(compose["services"]["api"]["environment"]["WEB_CONCURRENCY"]).isdigit()


def test_api_and_ingest_share_image_settings_and_volumes(compose: dict[str, Any]) -> None:
    api, ingest = compose["services"]["api"], compose["services"]["ingest"]
    assert api["image"] == ingest["image"]
    assert api["build"] == ingest["build"]
    assert api["volumes"] == ingest["volumes"]
    for name, value in ingest["environment"].items():
        assert api["environment"][name] == value
    assert api["environment"]["QDRANT_URL"] == "http://qdrant:6333"
    assert api["environment"]["QDRANT_API_KEY"].startswith("${QDRANT_API_KEY:?")


def mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of each short-syntax volume, with ${VAR:-default} at its default."""
    result = []
    for entry in service.get("volumes", []):
        assert isinstance(entry, str), "use the short syntax"
        parts = with_defaults(entry).split(":")
        result.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return result


def test_mounted_host_paths_exist(compose: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    for name, service in compose["services"].items():
        for source, _target, _mode in mounts(service):
            if source in named:
                continue
            path = REPO / with_defaults(source)
            assert path.exists(), f"{name} mounts {source}, which is not in the repository"
    # The folders the stack needs from the repository.
    for folder in ("web", "qdrant", "deploy/nginx/templates", "deploy/nginx/entrypoint", "images"):
        assert (REPO / folder).is_dir(), folder


def test_mounts_and_paths_agree(compose: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    for name in APP_SERVICES:
        service = compose["services"][name]
        env = service["environment"]
        by_target = {target: (source, mode) for source, target, mode in mounts(service)}
        photos_source, photos_mode = by_target[env["IMAGES_DIR"]]
        assert photos_mode == "ro", "the photo library is mounted read-only"
        assert with_defaults(photos_source) == "./images"
        assert by_target[env["DATA_DIR"]][0] in named
        assert by_target[env["HF_HOME"]][0] in named, "model weights download once, into a named volume"
    web = {target: (source, mode) for source, target, mode in mounts(compose["services"]["web"])}
    assert web["/usr/share/nginx/html"] == ("./web", "ro")
    assert web["/etc/nginx/templates"] == ("./deploy/nginx/templates", "ro")
    qdrant = {target: (source, mode) for source, target, mode in mounts(compose["services"]["qdrant"])}
    assert qdrant["/qdrant/config/production.yaml"] == ("./qdrant/config.yaml", "ro")
    assert qdrant["/qdrant/storage"][0] in named
    assert qdrant["/qdrant/snapshots"][0] in named
    # Every named volume is used.
    used = {source for service in compose["services"].values() for source, _, _ in mounts(service)}
    assert named <= used


def test_only_web_publishes_a_port(compose: dict[str, Any], gpu: dict[str, Any]) -> None:
    for source in (compose, gpu):
        for name, service in source["services"].items():
            if name != "web":
                assert "ports" not in service, f"{name} must not be reachable from outside the stack"
    assert compose["services"]["web"]["ports"] == ["${WEB_PORT:-8080}:80"]


def test_images_are_pinned(compose: dict[str, Any], gpu: dict[str, Any]) -> None:
    for source in (compose, gpu):
        for name, service in source["services"].items():
            image = service.get("image")
            assert image, f"{name} has no image name"
            repository, _, tag = image.rpartition(":")
            assert repository and tag and tag != "latest", f"{name}: pin {image}"
            if "build" not in service:
                assert re.search(r"\d+\.\d+", tag), f"{name}: pin a version, not {tag}"
    assert compose["services"]["api"]["image"] != gpu["services"]["api"]["image"], "CPU and GPU builds differ"


def test_qdrant_server_version_fits_the_client() -> None:
    """qdrant-client warns when the server is more than one minor version away."""
    requirements = (REPO / "requirements.txt").read_text()
    client = re.search(r"^qdrant-client==(\d+)\.(\d+)", requirements, re.M)
    assert client
    image = load(COMPOSE)["services"]["qdrant"]["image"]
    server = re.search(r":v(\d+)\.(\d+)\.\d+", image)
    assert server, image
    assert server.group(1) == client.group(1)
    assert abs(int(server.group(2)) - int(client.group(2))) <= 1


def test_healthchecks_and_startup_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("qdrant", "api", "web"):
        check = services[name]["healthcheck"]
        assert check["test"][0] == "CMD" and len(check["test"]) > 1
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name}: healthcheck {key}"
    assert services["api"]["depends_on"] == {"qdrant": {"condition": "service_healthy"}}
    assert services["web"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert services["ingest"]["depends_on"] == {"qdrant": {"condition": "service_healthy"}}
    api_check = " ".join(services["api"]["healthcheck"]["test"])
    assert "/api/ready" in api_check and "curl" not in api_check and "wget" not in api_check
    assert "/readyz" in " ".join(services["qdrant"]["healthcheck"]["test"])
    assert "/nginx-health" in " ".join(services["web"]["healthcheck"]["test"])
    for name in ("qdrant", "api", "web"):
        assert services[name]["restart"] == "unless-stopped"


def test_api_and_ingest_commands(compose: dict[str, Any]) -> None:
    api, ingest = compose["services"]["api"], compose["services"]["ingest"]
    assert api["command"] == ["gunicorn", "-c", "api/gunicorn_conf.py", "api.wsgi:app"]
    assert ingest["entrypoint"] == ["python", "-m", "ingest"]
    assert ingest["profiles"] == ["ingest"], "the job is not started by `docker compose up`"
    assert ingest["restart"] == "no"
    for path in ("api/gunicorn_conf.py", "api/wsgi.py", "ingest/__main__.py"):
        assert (REPO / path).is_file(), path


def test_qdrant_service_and_config(compose: dict[str, Any]) -> None:
    qdrant = compose["services"]["qdrant"]
    assert qdrant["environment"]["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY:?")
    assert "expose" in qdrant and "ports" not in qdrant
    config = load(QDRANT_CONFIG)
    assert config["telemetry_disabled"] is True
    assert "api_key" not in config.get("service", {}), "the key comes from .env, never from the repository"
    assert "read_only_api_key" not in config.get("service", {})
    # The storage paths (relative to /qdrant, the image's working directory) are the mounted volumes.
    targets = {target for _, target, _ in mounts(qdrant)}
    assert "/qdrant/" + config["storage"]["storage_path"].removeprefix("./") in targets
    assert "/qdrant/" + config["storage"]["snapshots_path"].removeprefix("./") in targets
    assert config["service"]["http_port"] == 6333


def test_gpu_override(gpu: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        service = gpu["services"][name]
        assert service["environment"]["CLIP_DEVICE"] == "cuda"
        assert "TORCH_INDEX_URL" in service["build"]["args"]
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia"
        assert device["capabilities"] == ["gpu"]
    assert set(gpu["services"]) == set(APP_SERVICES)


# ---------------------------------------------------------------------------------------------------------
# The healthchecks, run here


class StandIn:
    """A one-route HTTP server answering `status` (HTTP/1.0, like Qdrant's readyz behind bash)."""

    def __init__(self, status: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stand_in = self
        self.status = status
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stand_in.paths.append(self.path)
                body = b"all shards are ready" if status == 200 else b"not ready"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=[200, 503])
def stand_in(request: pytest.FixtureRequest) -> Iterator[StandIn]:
    server = StandIn(request.param)
    yield server
    server.close()


def check_command(compose: dict[str, Any], service: str) -> list[str]:
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return list(test[1:])


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_qdrant_healthcheck_works(compose: dict[str, Any], stand_in: StandIn) -> None:
    command = check_command(compose, "qdrant")
    assert command[:2] == ["bash", "-c"]
    script = command[2]
    assert "/dev/tcp/127.0.0.1/6333" in script
    script = script.replace("/6333", f"/{stand_in.port}")
    result = subprocess.run(["bash", "-c", script], capture_output=True, timeout=10)
    assert stand_in.paths == ["/readyz"]
    assert (result.returncode == 0) is (stand_in.status == 200)


def run_api_check(compose: dict[str, Any], port: int) -> subprocess.CompletedProcess[bytes]:
    command = check_command(compose, "api")
    assert command[0] == "python"  # the image's venv python; here the test's
    env = {"PATH": os.environ.get("PATH", ""), "PORT": str(port)}
    return subprocess.run([sys.executable, *command[1:]], capture_output=True, env=env, timeout=30)


def test_api_healthcheck_works(compose: dict[str, Any], stand_in: StandIn) -> None:
    result = run_api_check(compose, stand_in.port)
    assert stand_in.paths == ["/api/ready"]
    assert (result.returncode == 0) is (stand_in.status == 200)


@pytest.mark.slow
def test_api_healthcheck_against_the_real_gunicorn(
    compose: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    try:
        live = request.getfixturevalue("live_server")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py provides no `live_server` fixture yet")
    port = int(str(live.url).rsplit(":", 1)[1])
    result = run_api_check(compose, port)
    assert result.returncode == 0, result.stderr
    with socket.socket() as sock:  # and it fails where nothing answers
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    assert run_api_check(compose, dead).returncode != 0


# ---------------------------------------------------------------------------------------------------------
# The Dockerfile


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, args))
    return found


def test_dockerfile_is_multi_stage_without_build_tools_in_the_final_image() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    names = [re.search(r"\bAS\s+(\S+)", s[0][1], re.I) for s in all_stages]
    assert all(names), "name every stage"
    builder, final = all_stages[0], all_stages[-1]
    assert any("build-essential" in args for kw, args in builder if kw == "RUN")
    final_text = "\n".join(args for _, args in final)
    for tool in ("build-essential", "gcc", "g++", "apt-get install"):
        assert tool not in final_text, f"{tool} in the final stage"
    assert any(kw == "COPY" and args.startswith("--from=builder /opt/venv") for kw, args in final)


def test_dockerfile_runs_as_a_non_root_user() -> None:
    final = stages()[-1]
    users = [args for kw, args in final if kw == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    last_user = max(i for i, (kw, _) in enumerate(final) if kw == "USER")
    assert all(kw != "RUN" for kw, _ in final[last_user:]), "nothing runs as root after USER"


def test_dockerfile_installs_dependencies_before_copying_code() -> None:
    flat = [(kw, args) for stage in stages() for kw, args in stage]
    copy_reqs = next(i for i, (kw, args) in enumerate(flat) if kw == "COPY" and "requirements.txt" in args)
    pip_reqs = next(i for i, (kw, args) in enumerate(flat) if kw == "RUN" and "pip install -r" in args)
    code = [
        i
        for i, (kw, args) in enumerate(flat)
        if kw == "COPY" and re.search(r"(^|\s)(core|api|ingest|\.)/?(\s|$)", args)
    ]
    assert code, "the code is never copied"
    assert copy_reqs < pip_reqs < min(code)
    copied = {
        args.split()[0].rstrip("/") for kw, args in stages()[-1] if kw == "COPY" and "--from" not in args
    }
    assert {"core", "ingest", "api"} <= copied
    assert copied <= PRODUCT_PACKAGES, "only product code goes into the image"
    missing = {
        (name, needed) for name in copied for needed in _repo_imports(REPO / name) if needed not in copied
    }
    assert not missing, f"copied code imports packages the image lacks: {sorted(missing)}"
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert all(f"!{name}/" in ignored for name in copied), "each copied folder is allowed by .dockerignore"


# Top-level folders of the repository that hold code the product runs (not tests, bench or devtools).
PRODUCT_PACKAGES = {"core", "ingest", "api", "search", "eval", "ops", "dataset"}


def _repo_imports(folder: Path) -> set[str]:
    """The repository's top-level packages that the modules under `folder` import."""
    import ast

    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found.update(n.split(".")[0] for n in names if (REPO / n.split(".")[0]).is_dir())
    return found


def test_dockerfile_torch_pin_follows_requirements() -> None:
    run = next(args for kw, args in instructions() if kw == "RUN" and "--index-url" in args)
    assert '--index-url "$TORCH_INDEX_URL"' in run
    sed = re.search(r"\$\((sed .*?requirements\.txt)\)", run)
    assert sed, "the torch version is read from requirements.txt"
    command = sed.group(1).replace("/tmp/requirements.txt", str(REPO / "requirements.txt"))
    version = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=10).stdout.strip()
    pinned = re.search(r"^torch==(\S+)", (REPO / "requirements.txt").read_text(), re.M)
    assert pinned and version == pinned.group(1)
    assert any(kw == "ARG" and args.startswith("TORCH_INDEX_URL=") for kw, args in instructions())


def test_dockerfile_env_matches_compose(compose: dict[str, Any]) -> None:
    final = stages()[-1]
    env_text = " ".join(args for kw, args in final if kw == "ENV")
    env = dict(re.findall(r"(\w+)=(\S+)", env_text))
    api_env = compose["services"]["api"]["environment"]
    for name in ("HF_HOME", "IMAGES_DIR", "DATA_DIR"):
        assert env[name] == api_env[name], name
    assert env["HF_HOME"] == "/cache/huggingface"
    cmd = next(args for kw, args in final if kw == "CMD")
    assert yaml.safe_load(cmd) == compose["services"]["api"]["command"]


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last matching pattern wins)."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = (
            re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        )
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_secrets_and_data_out() -> None:
    for path in (
        ".env",
        ".venv/bin/python",
        ".git/HEAD",
        "images/a.jpg",
        "data/qdrant/x",
        "tests/test_x.py",
        "core/__pycache__/x.pyc",
        "api/.env",
        "web/index.html",
    ):
        assert dockerignore_excludes(path), path
    for kw, args in stages()[-1] + stages()[0]:
        if kw == "COPY" and "--from" not in args:
            source = args.split()[0]
            assert not dockerignore_excludes(
                source.rstrip("/") + ("/x.py" if source.endswith("/") else "")
            ), source
    assert not dockerignore_excludes("core/settings.py")
    assert not dockerignore_excludes("core/classes.yaml")
