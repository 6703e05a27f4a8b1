"""Settings (core/settings.py): the defaults of DESIGN.md's table, the fixed variable names, blank
means unset, and a bad value stops the program with exit code 2 naming the variable. Settings are every
setting: gunicorn takes its values from them (checked with `gunicorn --print-config`), the store kind maps
to its backend in core/store/__init__.py only, and no product module reads the environment itself."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import get_args

import pytest
import requests

from core.settings import DEFAULT_MODEL, Settings, StoreKind, load_settings
from core.store import BACKENDS, open_scratch_store, open_store, store_backend

FIELDS = [name.upper() for name in Settings.model_fields]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No setting in the environment, and a working folder without a `.env`."""
    for name in FIELDS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_defaults_match_the_design(clean_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.clip_model == DEFAULT_MODEL == "openai/clip-vit-large-patch14"
    assert settings.clip_device == "auto"
    assert settings.clip_precision == "auto"
    assert settings.qdrant_url is None and settings.qdrant_api_key is None
    assert settings.store_kind == "embedded"
    assert settings.images_dir == Path("images")
    assert settings.data_dir == Path("data")
    assert settings.port == 8000
    assert settings.max_upload_mb == 20
    assert settings.max_upload_bytes == 20 * 1024 * 1024
    assert settings.max_image_pixels == 50_000_000
    assert settings.classes_file.name == "classes.yaml" and settings.classes_file.is_file()
    assert settings.host == "127.0.0.1"
    assert settings.web_concurrency is None
    assert settings.gunicorn_threads == 4 and settings.gunicorn_timeout == 120
    assert settings.gunicorn_access_log == "-"
    assert settings.pixabay_api_key is None
    assert settings.pixabay_api_url == "https://pixabay.com/api/"
    assert settings.wikimedia_api_url == "https://commons.wikimedia.org/w/api.php"


def test_derived_paths(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "d")
    assert settings.shard_dir == tmp_path / "d" / "qdrant"
    assert settings.thumbs_dir == tmp_path / "d" / "thumbs"
    assert settings.crosscheck_report == tmp_path / "d" / "crosscheck.json"


def test_the_fixed_variable_names_are_read(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    values = {
        "CLIP_MODEL": "/models/clip",
        "CLIP_DEVICE": "cuda",
        "CLIP_PRECISION": "bf16",
        "QDRANT_URL": "http://qdrant:6333",
        "QDRANT_API_KEY": "secret",
        "IMAGES_DIR": str(tmp_path / "photos"),
        "DATA_DIR": str(tmp_path / "state"),
        "PORT": "9001",
        "MAX_UPLOAD_MB": "5",
        "MAX_IMAGE_PIXELS": "1000000",
        "ENCODE_BATCH_SIZE": "16",
        "HOST": "0.0.0.0",
        "WEB_CONCURRENCY": "3",
        "GUNICORN_THREADS": "8",
        "GUNICORN_TIMEOUT": "300",
        "GUNICORN_ACCESS_LOG": "",
        "PIXABAY_API_KEY": "key-1",
        "PIXABAY_API_URL": "http://127.0.0.1:9/pixabay/",
        "WIKIMEDIA_API_URL": "http://127.0.0.1:9/w/api.php",
    }
    for name, value in values.items():
        clean_env.setenv(name, value)
    settings = load_settings()
    assert settings.clip_model == "/models/clip"
    assert settings.clip_device == "cuda"
    assert settings.clip_precision == "bf16"
    assert settings.qdrant_url == "http://qdrant:6333" and settings.store_kind == "server"
    assert settings.qdrant_api_key == "secret"
    assert settings.images_dir == tmp_path / "photos"
    assert settings.data_dir == tmp_path / "state"
    assert settings.port == 9001
    assert settings.max_upload_bytes == 5 * 1024 * 1024
    assert settings.max_image_pixels == 1_000_000
    assert settings.encode_batch_size == 16
    assert settings.host == "0.0.0.0" and settings.web_concurrency == 3
    assert settings.gunicorn_threads == 8 and settings.gunicorn_timeout == 300
    assert settings.gunicorn_access_log == ""
    assert settings.pixabay_api_key == "key-1"
    assert settings.pixabay_api_url == "http://127.0.0.1:9/pixabay/"
    assert settings.wikimedia_api_url == "http://127.0.0.1:9/w/api.php"


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_qdrant_url_means_embedded(clean_env: pytest.MonkeyPatch, blank: str) -> None:
    clean_env.setenv("QDRANT_URL", blank)
    clean_env.setenv("QDRANT_API_KEY", blank)
    settings = load_settings()
    assert settings.qdrant_url is None and settings.qdrant_api_key is None
    assert settings.store_kind == "embedded"


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_optional_values_mean_their_default(clean_env: pytest.MonkeyPatch, blank: str) -> None:
    for name in ("WEB_CONCURRENCY", "PIXABAY_API_KEY", "PIXABAY_API_URL", "WIKIMEDIA_API_URL"):
        clean_env.setenv(name, blank)
    settings = load_settings()
    assert settings.web_concurrency is None and settings.pixabay_api_key is None
    assert settings.pixabay_api_url == Settings.model_fields["pixabay_api_url"].default
    assert settings.wikimedia_api_url == Settings.model_fields["wikimedia_api_url"].default


def test_dotenv_is_read_and_the_environment_wins(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=9100\nHNSW_EF=64\nQDRANT_URL=\n", encoding="utf-8")
    settings = load_settings()
    assert settings.port == 9100 and settings.hnsw_ef == 64 and settings.store_kind == "embedded"
    clean_env.setenv("PORT", "9200")
    assert load_settings().port == 9200


def test_the_shipped_env_example_is_valid(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / ".env.example"
    if not example.is_file():
        pytest.skip(".env.example is not there yet")
    (tmp_path / ".env").write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
    settings = load_settings()
    assert settings.store_kind == "embedded"
    assert settings.clip_model == DEFAULT_MODEL
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.model_dump() == defaults.model_dump(), "the values .env.example shows are the defaults"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENCODE_BATCH_SIZE", "0"),
        ("ENCODE_BATCH_SIZE", "many"),
        ("CLIP_DEVICE", "tpu"),
        ("CLIP_PRECISION", "fp8"),
        ("CLIP_MODEL", "   "),
        ("PORT", "70000"),
        ("MAX_UPLOAD_MB", "0"),
        ("MAX_IMAGE_PIXELS", "lots"),
        ("HNSW_EF", "1"),
        ("LOG_LEVEL", "CHATTY"),
        ("HOST", "  "),
        ("WEB_CONCURRENCY", "0"),
        ("GUNICORN_THREADS", "0"),
        ("GUNICORN_TIMEOUT", "-1"),
        ("PIXABAY_API_URL", "pixabay.com/api/"),
        ("WIKIMEDIA_API_URL", "ftp://commons.wikimedia.org/"),
    ],
)
def test_bad_values_exit_2_naming_the_variable(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(SystemExit) as caught:
        load_settings()
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "Invalid settings" in err
    assert variable in err
    assert repr(value) in err


def test_several_bad_values_are_all_reported(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("CLIP_DEVICE", "tpu")
    clean_env.setenv("PORT", "-1")
    with pytest.raises(SystemExit):
        load_settings()
    err = capsys.readouterr().err
    assert "CLIP_DEVICE" in err and "PORT" in err


def test_overrides_are_checked_too(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_settings(port=1234).port == 1234
    with pytest.raises(SystemExit) as caught:
        load_settings(thumb_size=1)
    assert caught.value.code == 2
    assert "THUMB_SIZE" in capsys.readouterr().err


# -- gunicorn takes its values from Settings ---------------------------------------------------------------
REPO = Path(__file__).resolve().parent.parent
GUNICORN_CONF = REPO / "api" / "gunicorn_conf.py"
CORES = os.cpu_count() or 2


def clean_environment(**values: str) -> dict[str, str]:
    """The environment without any Wonders setting, plus `values`."""
    env = {k: v for k, v in os.environ.items() if k not in FIELDS and not k.startswith("GUNICORN_CMD")}
    return {**env, **values}


def gunicorn_config(tmp_path: Path, **values: str) -> subprocess.CompletedProcess[str]:
    """`gunicorn --print-config` with api/gunicorn_conf.py, in a folder without `.env` (the app is not loaded)."""
    command = [sys.executable, "-m", "gunicorn", "--print-config", "-c", str(GUNICORN_CONF), "api.wsgi:app"]
    return subprocess.run(
        command, cwd=tmp_path, env=clean_environment(**values), capture_output=True, text=True, timeout=60
    )


def gunicorn_values(tmp_path: Path, **values: str) -> dict[str, str]:
    """What gunicorn resolved, by setting name."""
    done = gunicorn_config(tmp_path, **values)
    assert done.returncode == 0, done.stderr
    lines = (line.partition("=") for line in done.stdout.splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, _, value in lines}


def test_gunicorn_defaults_come_from_settings(tmp_path: Path) -> None:
    conf = gunicorn_values(tmp_path, WEB_CONCURRENCY="3")
    assert conf["bind"] == "['127.0.0.1:8000']"
    assert conf["workers"] == "1"  # the embedded store belongs to one process, whatever WEB_CONCURRENCY says
    assert conf["threads"] == "4" and conf["timeout"] == "120" and conf["accesslog"] == "-"
    assert (
        conf["worker_class"] == "api.buffered_worker.BufferedThreadWorker" and conf["preload_app"] == "False"
    )
    assert conf["raw_env"] == f"['TORCH_THREADS={CORES}']"


def test_gunicorn_reads_every_value_through_settings(tmp_path: Path) -> None:
    conf = gunicorn_values(
        tmp_path,
        HOST="0.0.0.0",
        PORT="9123",
        QDRANT_URL="http://qdrant:6333",
        WEB_CONCURRENCY="3",
        GUNICORN_THREADS="8",
        GUNICORN_TIMEOUT="300",
        GUNICORN_ACCESS_LOG="",
        LOG_LEVEL="WARNING",
    )
    assert conf["bind"] == "['0.0.0.0:9123']"
    assert conf["workers"] == "3"
    assert conf["threads"] == "8" and conf["timeout"] == "300"
    assert conf["accesslog"] == "None" and conf["loglevel"] == "warning"
    assert conf["raw_env"] == f"['TORCH_THREADS={max(1, CORES // 3)}']"  # workers x threads <= cores


def test_a_qdrant_server_gets_two_to_four_workers_by_default(tmp_path: Path) -> None:
    assert gunicorn_values(tmp_path, QDRANT_URL="http://qdrant:6333")["workers"] == str(max(2, min(4, CORES)))


def test_torch_threads_set_by_the_user_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TORCH_THREADS=1\n", encoding="utf-8")  # the workers read it too
    assert gunicorn_values(tmp_path)["raw_env"] == "[]"


def test_a_bad_gunicorn_setting_stops_gunicorn_naming_it(tmp_path: Path) -> None:
    done = gunicorn_config(tmp_path, GUNICORN_THREADS="many")
    assert done.returncode == 2
    assert "GUNICORN_THREADS" in done.stderr and "'many'" in done.stderr


ECHO_APP = '''
from core.settings import load_settings


def app(environ, start_response):
    """What a worker's settings say about its torch threads (api/wsgi.py reads them the same way)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(load_settings().torch_threads).encode()]
'''


@pytest.mark.slow
@pytest.mark.parametrize(("values", "workers"), [({}, 1), ({"QDRANT_URL": "http://127.0.0.1:9"}, 2)])
def test_each_worker_gets_its_share_of_the_cores(
    tmp_path: Path, values: dict[str, str], workers: int
) -> None:
    """The hand-off for real: the workers' own Settings read TORCH_THREADS = cores / workers."""
    from devtools.live_server import free_port

    (tmp_path / "echo_app.py").write_text(ECHO_APP, encoding="utf-8")
    port = free_port()
    env = clean_environment(
        **values, PORT=str(port), WEB_CONCURRENCY="2", GUNICORN_ACCESS_LOG="", PYTHONPATH=f"{REPO}:{tmp_path}"
    )
    command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "echo_app:app"]
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        answers: set[str] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not answers:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            try:
                answers.add(requests.get(f"http://127.0.0.1:{port}/", timeout=5).text)
            except requests.ConnectionError:
                time.sleep(0.1)
        assert answers == {str(max(1, CORES // workers))}
    finally:
        server.terminate()
        server.wait(timeout=30)


# -- the store kind is mapped to its backend in one place ------------------------------------------------
def test_every_store_kind_has_one_backend() -> None:
    assert set(BACKENDS) == set(get_args(StoreKind))
    for kind, backend in BACKENDS.items():
        assert backend.kind == kind
        assert callable(importlib.import_module(backend.module).from_settings), backend.module
    assert BACKENDS["embedded"].single_process and not BACKENDS["server"].single_process


def test_open_store_opens_the_backend_of_the_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.store import server as server_module
    from core.store.breaker import CircuitBreakerStore
    from core.store.embedded import EmbeddedStore
    from core.store.server import ServerStore

    clients: list[dict[str, object]] = []
    monkeypatch.setattr(server_module, "QdrantClient", lambda **kwargs: clients.append(kwargs))

    embedded = Settings(_env_file=None, data_dir=tmp_path, hnsw_ef=64)  # type: ignore[call-arg]
    assert store_backend(embedded) is BACKENDS["embedded"]
    store = open_store(embedded)
    assert isinstance(store, EmbeddedStore) and store.root == embedded.shard_dir and store.hnsw_ef == 64
    store.close()
    server = Settings(  # type: ignore[call-arg]
        _env_file=None, qdrant_url="http://qdrant:6333", qdrant_api_key="k", qdrant_timeout_s=7, hnsw_ef=64
    )
    assert store_backend(server) is BACKENDS["server"]
    remote = open_store(server)
    assert isinstance(remote, CircuitBreakerStore) and isinstance(remote.inner, ServerStore)
    assert remote.url == "http://qdrant:6333" and remote.hnsw_ef == 64
    assert clients == [{"url": "http://qdrant:6333", "api_key": "k", "timeout": 7}]


def test_a_scratch_store_builds_hnsw_whatever_the_settings(tmp_path: Path) -> None:
    from core.store.embedded import EmbeddedStore

    scratch = open_scratch_store(tmp_path / "scratch", hnsw_ef=32)
    assert isinstance(scratch, EmbeddedStore) and scratch.indexing_threshold_kb == 1 and scratch.hnsw_ef == 32
    scratch.close()


# -- nobody else reads the environment -------------------------------------------------------------------
NOT_PRODUCT = {"tests", "bench", "devtools", ".venv", ".git"}
ENVIRONMENT_READERS = {"environ", "environb", "getenv", "getenvb"}
# Variables that belong to a library's own protocol, not to Wonders' settings: prometheus_client's
# multiprocess mode reads its folder from the environment that gunicorn's master sets for its workers.
LIBRARY_VARIABLES = {"PROMETHEUS_MULTIPROC_DIR"}


def environment_reads(path: Path) -> list[str]:
    """`os.environ` / `os.getenv` uses in a module other than writes (`os.environ[k] = v`, `del`)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [
                f"{path.relative_to(REPO)}:{node.lineno}" for a in node.names if a.name in ENVIRONMENT_READERS
            ]
        if not (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ENVIRONMENT_READERS
        ):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store | ast.Del):
            continue
        if any(name in lines[node.lineno - 1] for name in LIBRARY_VARIABLES):
            continue
        found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_no_product_module_reads_the_environment_itself() -> None:
    modules = [p for p in REPO.rglob("*.py") if not NOT_PRODUCT & set(p.relative_to(REPO).parts)]
    assert any(p.name == "gunicorn_conf.py" for p in modules) and any(
        p.parent.name == "dataset" for p in modules
    )
    reads = [read for path in modules for read in environment_reads(path)]
    assert not reads, f"read the setting through core/settings.py instead: {reads}"
