"""The multilingual text tower as a user meets it through the API (Flask's client, in-process): routing
by script, `text_encoder` overrides, per-tower cache and scores, truncation, the fallback to CLIP while
the tower loads or is off, the ready report, and `POST /api/embed` returning the vectors search used.

The tiny CLIP (devtools/tiny_clip.py) and the tiny M-CLIP (devtools/tiny_mclip.py) both give 16-d
vectors, so the stand-in fits the stand-in CLIP like the real M-CLIP fits ViT-L/14."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.api_helpers")

import json  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

from api.factory import create_app  # noqa: E402
from core.model import ClipModel  # noqa: E402
from core.settings import DEFAULT_MODEL, Settings  # noqa: E402
from core.store import IMAGES  # noqa: E402
from devtools.tiny_mclip import build_tiny_mclip  # noqa: E402
from search import SearchService  # noqa: E402
from search.text_router import needs_multilingual  # noqa: E402
from search.text_towers import multilingual_choice  # noqa: E402
from tests.api_helpers import ApiLibrary, assert_error, upload  # noqa: E402

pytest_plugins = ["tests.api_helpers"]

RUSSIAN = "зебра в траве"
ENGLISH = "a zebra in the grass"


@pytest.fixture(scope="module")
def tiny_mclip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The M-CLIP stand-in in the 2022 layout, 16-d like the tiny CLIP."""
    return build_tiny_mclip(tmp_path_factory.mktemp("tiny-mclip"), dim=16).folder


@pytest.fixture
def make_ml_app(api_library: ApiLibrary, encoder: ClipModel) -> Iterator[Callable[..., Flask]]:
    """An app over the session library with MULTILINGUAL_MODEL set; `wait` waits for the tower."""

    def build(multilingual: str | None, load: bool = True, wait: bool = True) -> Flask:
        settings = api_library.settings_with(multilingual_model=multilingual)
        app = create_app(settings, encoder, api_library.store, load=load)
        if wait:
            app.extensions["wonders"].wait_loaded(120)
        return app

    yield build


@pytest.fixture
def ml_client(make_ml_app: Callable[..., Flask], tiny_mclip_dir: Path) -> FlaskClient:
    """A client of an app whose multilingual tower is loaded."""
    return make_ml_app(str(tiny_mclip_dir)).test_client()


def search(client: FlaskClient, q: str, **params: Any) -> dict[str, Any]:
    """GET /api/search, asserted 200."""
    response = client.get("/api/search", query_string={"q": q, "k": 20, **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.json
    return body


def stored_vectors(api_library: ApiLibrary) -> dict[str, np.ndarray]:
    """Every stored photo's vector, by id."""
    found = api_library.store.retrieve(IMAGES, list(api_library.ids.values()), with_vectors=True)
    return {p.id: np.asarray(p.vector, dtype=np.float32) for p in found}


# -- routing ---------------------------------------------------------------------------------------------
def test_the_router_goes_by_script() -> None:
    for text in ("зебра", "Ελλάδα", "القاهرة", "東京タワー", "서울", "עברית", "हिन्दी", "Eiffel башня", "𝛂"):
        assert needs_multilingual(text), text
    for text in ("Eiffel Tower", "Straße über Brücken", "café ñandú", "🏔️ 2024!", "ｅｉｆｆｅｌ", "𝐀bc", "ª"):
        assert not needs_multilingual(text), text


def test_a_cyrillic_query_is_answered_by_the_multilingual_tower_an_english_one_by_clip(
    ml_client: FlaskClient,
) -> None:
    russian, english = search(ml_client, RUSSIAN), search(ml_client, ENGLISH)
    assert russian["text_encoder"] == "multilingual" and english["text_encoder"] == "clip"
    assert russian["text_encoder_fallback"] is None and english["text_encoder_fallback"] is None
    assert russian["truncated"] is False and english["truncated"] is False
    assert len(russian["results"]) == len(english["results"]) == 20


def test_text_encoder_overrides_the_router(ml_client: FlaskClient) -> None:
    auto = search(ml_client, RUSSIAN)
    forced_clip = search(ml_client, RUSSIAN, text_encoder="clip")
    forced_multi = search(ml_client, ENGLISH, text_encoder="multilingual")
    assert forced_clip["text_encoder"] == "clip" and forced_multi["text_encoder"] == "multilingual"
    # Another tower, another vector: the scores of the same text differ.
    assert [r["score"] for r in auto["results"]] != [r["score"] for r in forced_clip["results"]]
    post = ml_client.post("/api/search", json={"q": ENGLISH, "text_encoder": "multilingual", "k": 20})
    assert post.status_code == 200 and post.json["text_encoder"] == "multilingual"
    assert post.json["results"] == forced_multi["results"]
    error = assert_error(ml_client.get("/api/search?q=x&text_encoder=bert"), 400, "invalid_parameter")
    assert "text_encoder" in error["message"]


def test_the_cache_is_per_tower(ml_client: FlaskClient) -> None:
    wonders: SearchService = ml_client.application.extensions["wonders"]
    search(ml_client, "Кремль", text_encoder="clip")
    search(ml_client, "Кремль", text_encoder="multilingual")
    misses = wonders.cache.misses
    again_clip = search(ml_client, "  Кремль ", text_encoder="clip")
    again_multi = search(ml_client, "Кремль")
    assert wonders.cache.misses == misses  # both answered from the cache, each from its own entry
    assert again_clip["text_encoder"] == "clip" and again_multi["text_encoder"] == "multilingual"
    assert again_clip["results"] != again_multi["results"]


def test_min_score_applies_within_the_tower_that_answered(ml_client: FlaskClient) -> None:
    for q, tower in ((RUSSIAN, "multilingual"), (ENGLISH, "clip")):
        full = search(ml_client, q)
        middle = len(full["results"]) // 2  # halfway between two scores: rounding cannot blur it
        floor = (full["results"][middle]["score"] + full["results"][middle + 1]["score"]) / 2
        above = search(ml_client, q, min_score=floor)
        assert above["text_encoder"] == tower
        assert above["results"] == [r for r in full["results"] if r["score"] >= floor]


def test_text_over_the_towers_limit_is_truncated_and_said_so(ml_client: FlaskClient) -> None:
    long_english = " ".join(["zebra"] * 100)  # beyond 77 tokens for both tokenizers
    long_russian = " ".join(["зебра"] * 100)
    for q, tower in ((long_english, "clip"), (long_russian, "multilingual")):
        body = search(ml_client, q)
        assert body["text_encoder"] == tower and body["truncated"] is True
        # What was cut does not count: a longer text with the same first 77 tokens has the same vector.
        longer = search(ml_client, q + (" " + q.split()[0]) * 20)
        assert longer["text_encoder"] == tower and longer["results"] == body["results"]
    assert search(ml_client, " ".join(["zebra"] * 10))["truncated"] is False


def test_image_searches_name_no_text_encoder(ml_client: FlaskClient, api_library: ApiLibrary) -> None:
    photo = next(iter(api_library.settings.images_dir.rglob("*.jpg"))).read_bytes()
    body = ml_client.post("/api/search/image", data=upload(photo), content_type="multipart/form-data").json
    assert body["text_encoder"] is None and body["truncated"] is None


# -- /api/embed --------------------------------------------------------------------------------------------
def test_embed_returns_the_vectors_search_used(ml_client: FlaskClient, api_library: ApiLibrary) -> None:
    wonders: SearchService = ml_client.application.extensions["wonders"]
    pages = {q: search(ml_client, q) for q in (RUSSIAN, ENGLISH)}
    response = ml_client.post("/api/embed", json={"texts": [RUSSIAN, ENGLISH]})
    assert response.status_code == 200
    body = response.json
    assert body["dim"] == 16 and [e["kind"] for e in body["embeddings"]] == ["text", "text"]
    stored = stored_vectors(api_library)
    for item, tower in zip(body["embeddings"], ("multilingual", "clip"), strict=True):
        assert item["tower"] == tower and item["text"] in pages and item["truncated"] is False
        model = (
            wonders.towers.multilingual.model_name if tower == "multilingual" else wonders.encoder.model_name
        )
        assert item["model"] == model
        vector = np.asarray(item["vector"], dtype=np.float32)
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
        cached = wonders.cache.get((tower, model, item["text"]))
        assert cached is not None and np.array_equal(vector, cached)  # bit for bit, from the same cache
        # And the scores search answered are this vector's cosines with the stored photos.
        for result in pages[item["text"]]["results"]:
            assert abs(float(stored[result["id"]] @ vector) - result["score"]) < 1e-5


def test_embed_takes_texts_and_an_image_in_one_multipart_request(
    ml_client: FlaskClient, api_library: ApiLibrary
) -> None:
    photo_path = next(iter(sorted(api_library.settings.images_dir.rglob("*.jpg"))))
    texts = json.dumps([RUSSIAN, ENGLISH], ensure_ascii=False)
    form = {**upload(photo_path.read_bytes()), "texts": texts, "text_encoder": "clip"}
    body = ml_client.post("/api/embed", data=form, content_type="multipart/form-data").json
    kinds = [(e["kind"], e["tower"]) for e in body["embeddings"]]
    assert kinds == [("text", "clip"), ("text", "clip"), ("image", "clip")]
    image = np.asarray(body["embeddings"][2]["vector"], dtype=np.float32)
    similar = ml_client.post(
        "/api/search/image?k=3", data=upload(photo_path.read_bytes()), content_type="multipart/form-data"
    ).json
    stored = stored_vectors(api_library)
    for result in similar["results"]:
        assert abs(float(stored[result["id"]] @ image) - result["score"]) < 1e-5
    alone = ml_client.post(
        "/api/embed", data=upload(photo_path.read_bytes()), content_type="multipart/form-data"
    )
    assert (
        alone.status_code == 200 and alone.json["embeddings"][0]["vector"] == body["embeddings"][2]["vector"]
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "empty_query"),
        ({"texts": []}, "empty_query"),
        ({"texts": ["   "]}, "empty_query"),
        ({"texts": [""]}, "invalid_parameter"),
        ({"texts": ["x"] * 65}, "invalid_parameter"),
        ({"texts": ["x" * 20_001]}, "invalid_parameter"),
        ({"texts": "one text"}, "invalid_parameter"),
        ({"texts": ["x"], "text_encoder": "bert"}, "invalid_parameter"),
        ({"texts": ["x"], "k": 3}, "invalid_parameter"),
    ],
)
def test_embed_refuses_what_search_refuses(ml_client: FlaskClient, body: dict[str, Any], code: str) -> None:
    assert_error(ml_client.post("/api/embed", json=body), 400, code)


@pytest.mark.parametrize(
    "fields",
    [
        {"texts": "not json"},
        {"texts": '{"a": 1}'},
        {"texts": "[1, 2]"},
        {"texts": ['["a"]', '["b"]']},
        {"texts": '["a"]', "k": "3"},
        {"texts": '["a"]', "text_encoder": "bert"},
    ],
)
def test_embed_refuses_bad_form_fields(ml_client: FlaskClient, fields: dict[str, Any]) -> None:
    response = ml_client.post("/api/embed", data=fields, content_type="multipart/form-data")
    assert_error(response, 400, "invalid_parameter")


def test_embed_refuses_a_bad_or_oversize_upload_like_search(make_app: Callable[..., Flask]) -> None:
    client = make_app(max_upload_mb=0.01).test_client()
    form = upload(b"not an image")
    assert_error(
        client.post("/api/embed", data=form, content_type="multipart/form-data"), 415, "unsupported_image"
    )
    big = upload(b"\xff" * 20_000)
    assert_error(
        client.post("/api/embed", data=big, content_type="multipart/form-data"), 413, "payload_too_large"
    )


def test_embed_is_in_the_openapi_document(ml_client: FlaskClient) -> None:
    spec = ml_client.get("/api/openapi.json").json
    operation = spec["paths"]["/api/embed"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert {"embeddings", "dim", "took_ms"} <= set(
        spec["components"]["schemas"]["EmbedResponse"]["properties"]
    )
    assert "text_encoder" in spec["components"]["schemas"]["SearchResponse"]["properties"]
    assert any(p["name"] == "text_encoder" for p in spec["paths"]["/api/search"]["get"]["parameters"])


# -- while the tower loads, when it is off -----------------------------------------------------------------
def test_while_the_tower_loads_clip_answers_and_says_so(
    make_ml_app: Callable[..., Flask], tiny_mclip_dir: Path
) -> None:
    client = make_ml_app(str(tiny_mclip_dir), load=False, wait=False).test_client()  # never loads
    ready = client.get("/api/ready")
    assert ready.status_code == 200
    assert ready.json["towers"]["multilingual"]["state"] == "loading"
    assert ready.json["towers"]["clip"]["state"] == "ready"
    body = search(client, RUSSIAN)
    assert body["text_encoder"] == "clip" and body["text_encoder_fallback"] == "loading"
    assert search(client, ENGLISH)["text_encoder_fallback"] is None
    error = assert_error(
        client.get("/api/search", query_string={"q": ENGLISH, "text_encoder": "multilingual"}), 503
    )
    assert error["code"] == "text_encoder_loading"
    embedded = client.post("/api/embed", json={"texts": [RUSSIAN]}).json["embeddings"][0]
    assert embedded["tower"] == "clip" and embedded["text_encoder_fallback"] == "loading"


def test_when_the_tower_is_off_clip_answers_and_says_so(make_ml_app: Callable[..., Flask]) -> None:
    client = make_ml_app("off").test_client()
    ready = client.get("/api/ready").json
    assert ready["towers"]["multilingual"] == {
        "state": "off",
        "model": None,
        "reason": "MULTILINGUAL_MODEL is off",
    }
    body = search(client, RUSSIAN)
    assert body["text_encoder"] == "clip" and body["text_encoder_fallback"] == "off"
    error = assert_error(
        client.get("/api/search", query_string={"q": RUSSIAN, "text_encoder": "multilingual"}),
        400,
        "text_encoder_unavailable",
    )
    assert "switched off" in error["message"]


def test_a_tower_that_fails_to_load_leaves_clip_serving(
    make_ml_app: Callable[..., Flask], tiny_mclip_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "no-tokenizer"
    broken.mkdir()
    for name in ("config.json", "pytorch_model.bin"):
        (broken / name).write_bytes((tiny_mclip_dir / name).read_bytes())
    client = make_ml_app(str(broken)).test_client()
    ready = client.get("/api/ready")
    assert ready.status_code == 200
    state = ready.json["towers"]["multilingual"]
    assert state["state"] == "failed" and "tokenizer" in state["reason"]
    assert str(tmp_path) not in state["reason"]  # anyone may read it: no server paths
    assert search(client, RUSSIAN)["text_encoder_fallback"] == "failed"


def test_an_explicit_tower_of_another_size_is_refused(
    make_ml_app: Callable[..., Flask], tmp_path: Path
) -> None:
    eight = build_tiny_mclip(tmp_path / "eight-d", dim=8).folder
    client = make_ml_app(str(eight)).test_client()
    error = assert_error(client.get("/api/ready"), 503, "text_encoder_mismatch")
    assert "8-d" in error["message"] and "16-d" in error["message"] and str(tmp_path) not in error["message"]
    assert_error(client.get("/api/search", query_string={"q": ENGLISH}), 503, "text_encoder_mismatch")


# -- MULTILINGUAL_MODEL ----------------------------------------------------------------------------------
def test_the_default_follows_clip_model(make_settings: Callable[..., Settings]) -> None:
    default = multilingual_choice(make_settings(clip_model=DEFAULT_MODEL))
    assert default.model == "M-CLIP/XLM-Roberta-Large-Vit-L-14" and not default.explicit
    other = multilingual_choice(make_settings())  # the tiny CLIP
    assert other.model is None and not other.explicit and "ViT-L/14" in (other.reason or "")
    for value in ("off", " OFF ", "Off"):
        assert multilingual_choice(make_settings(multilingual_model=value)).model is None
    pinned = multilingual_choice(make_settings(multilingual_model="M-CLIP/XLM-Roberta-Large-Vit-L-14@abc"))
    assert pinned.model == "M-CLIP/XLM-Roberta-Large-Vit-L-14@abc" and pinned.explicit
    assert make_settings(multilingual_model="  ").multilingual_model is None


def test_an_explicit_published_tower_for_another_clip_is_refused_before_loading(
    make_settings: Callable[..., Settings],
) -> None:
    from search.cache import QueryCache
    from search.text_towers import TextTowers

    # Named, and known to be trained for ViT-L/14, beside a ViT-B/32: refused by name, nothing fetched.
    settings = make_settings(multilingual_model="M-CLIP/XLM-Roberta-Large-Vit-L-14")
    towers = TextTowers(settings, QueryCache(4))
    towers.check_fit("openai/clip-vit-base-patch32", 512)
    assert towers.refusal and "clip-vit-large-patch14" in towers.refusal
    assert towers.state().state == "failed" and towers.multilingual is None


@pytest.mark.parametrize(
    ("clip", "multilingual", "expected"),
    [
        ("fp32", "auto", "fp32"),  # an explicit CLIP precision holds for both towers
        ("auto", "auto", "int8"),  # a CPU without bf16
        ("int8", "auto", "int8"),
        ("fp32", "int8", "int8"),
        ("auto", "fp32", "fp32"),
    ],
)
def test_the_towers_precision(
    make_settings: Callable[..., Settings],
    tiny_mclip_dir: Path,
    encoder: ClipModel,
    monkeypatch: pytest.MonkeyPatch,
    clip: str,
    multilingual: str,
    expected: str,
) -> None:
    import core.model.device
    from search.cache import QueryCache
    from search.text_towers import TextTowers

    monkeypatch.setattr(core.model.device, "cpu_supports_bf16", lambda: False)
    settings = make_settings(
        multilingual_model=str(tiny_mclip_dir),
        clip_device="cpu",
        clip_precision=clip,
        multilingual_precision=multilingual,
    )
    towers = TextTowers(settings, QueryCache(4))
    towers.load(encoder.model_name, encoder.dim)
    assert towers.state().state == "ready" and towers.multilingual is not None
    assert towers.multilingual.precision == expected
