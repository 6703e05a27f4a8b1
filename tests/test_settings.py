"""Settings (core/settings.py): the defaults of DESIGN.md's table, the fixed variable names, blank
means unset, and a bad value stops the program with exit code 2 naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import DEFAULT_MODEL, Settings, load_settings

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
    assert settings.embedded
    assert settings.images_dir == Path("images")
    assert settings.data_dir == Path("data")
    assert settings.port == 8000
    assert settings.max_upload_mb == 20
    assert settings.max_upload_bytes == 20 * 1024 * 1024
    assert settings.max_image_pixels == 50_000_000
    assert settings.classes_file.name == "classes.yaml" and settings.classes_file.is_file()


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
    }
    for name, value in values.items():
        clean_env.setenv(name, value)
    settings = load_settings()
    assert settings.clip_model == "/models/clip"
    assert settings.clip_device == "cuda"
    assert settings.clip_precision == "bf16"
    assert settings.qdrant_url == "http://qdrant:6333" and not settings.embedded
    assert settings.qdrant_api_key == "secret"
    assert settings.images_dir == tmp_path / "photos"
    assert settings.data_dir == tmp_path / "state"
    assert settings.port == 9001
    assert settings.max_upload_bytes == 5 * 1024 * 1024
    assert settings.max_image_pixels == 1_000_000
    assert settings.encode_batch_size == 16


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_qdrant_url_means_embedded(clean_env: pytest.MonkeyPatch, blank: str) -> None:
    clean_env.setenv("QDRANT_URL", blank)
    clean_env.setenv("QDRANT_API_KEY", blank)
    settings = load_settings()
    assert settings.qdrant_url is None and settings.qdrant_api_key is None
    assert settings.embedded


def test_dotenv_is_read_and_the_environment_wins(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=9100\nHNSW_EF=64\nQDRANT_URL=\n", encoding="utf-8")
    settings = load_settings()
    assert settings.port == 9100 and settings.hnsw_ef == 64 and settings.embedded
    clean_env.setenv("PORT", "9200")
    assert load_settings().port == 9200


def test_the_shipped_env_example_is_valid(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / ".env.example"
    if not example.is_file():
        pytest.skip(".env.example is not there yet")
    (tmp_path / ".env").write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
    settings = load_settings()
    assert settings.embedded
    assert settings.clip_model == DEFAULT_MODEL


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
