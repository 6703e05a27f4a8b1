"""Every setting of Wonders, read from the environment (and an optional `.env`), checked at start.

The service, gunicorn (`api/gunicorn_conf.py`), ingest and `make dataset` all read their settings here and
nowhere else. Each field is documented in README.md and `.env.example`; the environment variable is the
field name in upper case (`clip_model` -> `CLIP_MODEL`).
"""

from __future__ import annotations

import sys
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "openai/clip-vit-large-patch14"

# The kinds of vector store; `core/store/__init__.py` maps each to its adapter and what it implies.
StoreKind = Literal["embedded", "server"]


class Settings(BaseSettings):
    """Typed settings object; build it with `load_settings()` to get a readable error on bad values."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Model
    clip_model: str = Field(DEFAULT_MODEL, description="CLIP model name on the hub, or a local folder")
    clip_device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="where the model runs")
    clip_precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = Field(
        "auto", description="weights precision; auto = fp16 on CUDA, bf16 on a CPU with bf16, else fp32"
    )
    encode_batch_size: int = Field(16, ge=1, le=512, description="images per forward pass during ingest")
    torch_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="torch intra-op threads; 0 = torch's default (under gunicorn: cores / workers)",
    )

    # Stores
    qdrant_url: str | None = Field(None, description="Qdrant server URL; unset = the embedded store")
    qdrant_api_key: str | None = Field(None, description="API key of the Qdrant server")
    qdrant_timeout_s: float = Field(10.0, gt=0, le=600, description="timeout of one Qdrant server call")
    # 256: photo queries (find similar, more like this) keep recall@12 0.998 even at a million photos.
    hnsw_ef: int = Field(256, ge=4, le=4096, description="HNSW search beam width (recall vs speed)")
    # Texts lie across the modality gap, far from every photo, where a graph built over photos is hard to
    # walk: at a million, with the cells below, text queries' recall@12 is 0.978-0.980 at 256 and
    # 0.990-0.998 at 512, for 1.3 ms more (docs/scaling.md); encoding the text takes 60-80 ms.
    hnsw_ef_text: int = Field(
        512, ge=4, le=4096, description="HNSW search beam width of queries with a text in them"
    )
    # A few text queries in a hundred end their walk in the wrong, biggest cluster of a big library; a
    # search restricted to the cells nearest to the text finds those (core/cells.py, docs/scaling.md).
    text_cells_probe: int = Field(
        2, ge=0, le=64, description="cells a text query also searches; 0 = the walk alone"
    )
    cells_min_photos: int = Field(
        50_000,
        ge=0,
        description="ingest trains the cells once the library has this many photos; 0 = only `make cells`",
    )
    # The graph of a new collection (a change needs `make ingest ARGS=--recreate`): more links and a wider
    # build beam find text-like queries (far from every photo) better in a big library, at build time.
    hnsw_m: int = Field(16, ge=4, le=128, description="HNSW links per vector of a new collection")
    hnsw_ef_construct: int = Field(
        128,
        ge=8,
        le=4096,
        description="HNSW build beam width of a new collection (graph quality vs build time)",
    )
    indexing_threshold_kb: int = Field(
        10000, ge=0, description="Qdrant builds HNSW for a segment above this size (KB); 0 = never"
    )

    # Files
    images_dir: Path = Field(Path("images"), description="the photo library")
    data_dir: Path = Field(Path("data"), description="embedded shard, thumbnails, reports")
    classes_file: Path = Field(
        Path(__file__).with_name("classes.yaml"), description="the classes and their prompts"
    )
    thumb_size: int = Field(512, ge=32, le=2048, description="longest side of a thumbnail, pixels")

    # Serving
    host: str = Field(
        "127.0.0.1",
        description="the address gunicorn binds; loopback unless a proxy such as nginx is in front",
    )
    port: int = Field(8000, ge=1, le=65535, description="where `make run` serves")
    max_upload_mb: float = Field(20.0, gt=0, le=1024, description="largest accepted upload, MB")
    max_image_pixels: int = Field(
        50_000_000, ge=1_000, description="images with more pixels are refused (decompression bombs)"
    )
    query_cache_size: int = Field(
        512, ge=0, description="query vectors cached: texts, and stored photos used as examples"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log verbosity")

    # gunicorn (api/gunicorn_conf.py)
    web_concurrency: int | None = Field(
        None,
        ge=1,
        le=64,
        description="gunicorn workers with a Qdrant server; unset = 2 to 4 by cores (an embedded store: 1)",
    )
    gunicorn_threads: int = Field(4, ge=1, le=256, description="request threads per gunicorn worker")
    gunicorn_timeout: int = Field(
        120,
        ge=0,
        le=3600,
        description="seconds a worker may be silent before gunicorn restarts it; 0 = never",
    )
    gunicorn_access_log: str = Field(
        "-", description="gunicorn's access log: - = stdout, a file, empty = none"
    )

    # make dataset (dataset/cli.py)
    pixabay_api_key: str | None = Field(None, description="also fetch photos from Pixabay with this key")
    pixabay_api_url: str = Field("https://pixabay.com/api/", description="the Pixabay API")
    wikimedia_api_url: str = Field(
        "https://commons.wikimedia.org/w/api.php", description="MediaWiki api.php of Wikimedia Commons"
    )

    # Operations (issue 18): backups. Metrics need no setting (GET /metrics, loopback and compose network);
    # gunicorn sets PROMETHEUS_MULTIPROC_DIR itself. Re-indexing takes its model from `make reindex`.
    backup_dir: Path = Field(Path("backups"), description="where `make backup` writes its archives")

    # First run (issue 13): what the service does by itself when it starts (embedded store only)
    index_on_start: bool = Field(
        True, description="index the library in the background when the service starts (serving at once)"
    )
    fetch_dataset_if_empty: bool = Field(
        True, description="with an empty library at start, download the landmark library in the background"
    )

    # Hardening (issue 19): what a hostile client, a hung store or a damaged data folder may cost.
    allowed_hosts: str = Field(
        "",
        description="extra host names the API answers to (comma-separated), besides localhost, "
        "127.0.0.1 and ::1; a request naming another Host is refused (DNS rebinding); * = any",
    )
    store_breaker_failures: int = Field(
        3, ge=1, le=1000, description="consecutive Qdrant server outages that open the circuit breaker"
    )
    store_breaker_cooldown_s: float = Field(
        5.0, gt=0, le=600, description="seconds an open breaker fails store calls at once before a probe"
    )
    request_header_timeout_s: float = Field(
        10.0, gt=0, le=600, description="seconds a client has to send a request's headers"
    )
    request_body_timeout_s: float = Field(
        120.0, gt=0, le=3600, description="seconds a client has to send a request's body"
    )
    decode_memory_mb: int = Field(
        512,
        ge=64,
        le=65536,
        description="memory all concurrent upload decodes may use together; more waits, then 503",
    )

    @field_validator("qdrant_url", "qdrant_api_key", "web_concurrency", "pixabay_api_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("pixabay_api_url", "wikimedia_api_url", mode="before")
    @classmethod
    def _blank_url_is_the_default(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and not value.strip() and info.field_name:
            return cls.model_fields[info.field_name].default
        return value

    @field_validator("pixabay_api_url", "wikimedia_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("host")
    @classmethod
    def _host_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be an address to bind, such as 127.0.0.1 or 0.0.0.0")
        return value.strip()

    @field_validator("clip_model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a model or a folder")
        return value.strip()

    @property
    def store_kind(self) -> StoreKind:
        """The kind of vector store: "server" when QDRANT_URL is set, else "embedded" (Qdrant Edge)."""
        return "server" if self.qdrant_url else "embedded"

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def host_names(self) -> frozenset[str]:
        """The Host names the API answers to: loopback's, and ALLOWED_HOSTS (lower case, no port)."""
        extra = {name.strip().lower().strip("[]") for name in self.allowed_hosts.split(",") if name.strip()}
        return frozenset({"localhost", "127.0.0.1", "::1"} | extra)

    @cached_property
    def shard_dir(self) -> Path:
        """Where the embedded Qdrant shards live."""
        return self.data_dir / "qdrant"

    @cached_property
    def thumbs_dir(self) -> Path:
        """Where thumbnails are written."""
        return self.data_dir / "thumbs"

    @cached_property
    def crosscheck_report(self) -> Path:
        """The JSON report of the last FAISS cross-check."""
        return self.data_dir / "crosscheck.json"

    # Scale (issue 17): quantized vectors, originals on disk, a Qdrant cluster, decoding processes.
    # Quantization and placement apply when a collection is created (`make ingest ARGS=--recreate`).
    quantization: Literal["none", "int8"] = Field(
        "none", description="int8 = scalar quantization of image vectors (4x less RAM for vectors)"
    )
    quantization_quantile: float = Field(
        0.99, gt=0.5, le=1.0, description="share of values the int8 range covers (outliers clipped)"
    )
    quantization_rescore: bool = Field(True, description="re-rank quantized candidates by the originals")
    quantization_oversampling: float = Field(
        2.0, ge=1.0, le=16.0, description="quantized candidates fetched per wanted result, before rescoring"
    )
    vectors_on_disk: bool = Field(False, description="original vectors memory-mapped, not held in RAM")
    qdrant_shards: int = Field(1, ge=1, le=1024, description="shards of a new server collection")
    qdrant_replication_factor: int = Field(
        1, ge=1, le=16, description="copies of each shard on a Qdrant cluster"
    )
    qdrant_write_consistency: int = Field(
        1, ge=1, le=16, description="replicas that must confirm a write before it returns"
    )
    decode_workers: int = Field(
        0, ge=0, le=256, description="ingest decoding processes; 0 = one per core, capped by the device"
    )

    # -- Multilingual text tower (issue 14; search/text_towers.py) ---------------------------------------
    # Unset: M-CLIP's XLM-R-large tower when CLIP_MODEL is the default ViT-L/14, else off. Set: that model
    # (hub name, name@commit, or a local folder), refused at start when it does not fit CLIP_MODEL; `off`.
    multilingual_model: str | None = Field(
        None,
        description="the multilingual text tower: hub name, name@commit, a local folder, or off; "
        "unset = M-CLIP's when CLIP_MODEL is the default ViT-L/14, else off",
    )

    # auto: an explicit CLIP_PRECISION (fp32, bf16, fp16) applies to this tower too; otherwise fp16 on
    # CUDA, bf16 on a CPU with bf16, int8 on other CPUs (core/model/multilingual.py says why).
    multilingual_precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = Field(
        "auto",
        description="the multilingual tower's weights; auto = CLIP_PRECISION when set to fp32/bf16/fp16, "
        "else fp16 on CUDA, bf16 on a CPU with bf16, int8 on other CPUs",
    )

    @field_validator("multilingual_model", mode="before")
    @classmethod
    def _multilingual_blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            if value.lower() == "off":
                return "off"
        return value


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment; on a bad value print what is wrong and exit with code 2."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        lines = ["Invalid settings:"]
        for problem in err.errors():
            name = ".".join(str(p) for p in problem["loc"]).upper()
            lines.append(f"  {name}: {problem['msg']} (got {problem.get('input')!r})")
        lines.append("See README.md, section 'Settings', or .env.example.")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
