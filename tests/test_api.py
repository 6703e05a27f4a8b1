"""Every endpoint through Flask's test client: the documented JSON shapes, paging, Unicode, the query cache."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.api_helpers")

import io  # noqa: E402
import re  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from PIL import Image  # noqa: E402

from core.images import decode_image  # noqa: E402
from core.model import ClipModel  # noqa: E402
from core.zero_shot import ZeroShotClassifier  # noqa: E402
from eval.crosscheck import run_crosscheck, save_report  # noqa: E402
from tests.api_helpers import (  # noqa: E402
    ATTRIBUTED,
    LIBRARY_SIZE,
    ApiLibrary,
    assert_error,
    declared_png,
    listing,
    upload,
)
from tests.image_factory import animated_gif, jpeg_bytes, palette_png, photo, truncated_jpeg  # noqa: E402

pytest_plugins = ["tests.api_helpers"]

RESULT_KEYS = {
    "id",
    "score",
    "label",
    "confidence",
    "thumb_url",
    "image_url",
    "width",
    "height",
    "attribution",
}
LABEL_KEYS = {"id", "name", "name_ru"}


def check_label(label: dict[str, Any]) -> None:
    """A label has the documented fields, all non-empty strings."""
    assert set(label) >= LABEL_KEYS
    assert all(isinstance(label[key], str) and label[key] for key in LABEL_KEYS)


def check_page(body: dict[str, Any], k: int, offset: int = 0) -> list[dict[str, Any]]:
    """The documented search answer; returns its results."""
    assert {"results", "k", "offset", "took_ms"} <= set(body)
    assert body["k"] == k and body["offset"] == offset
    assert isinstance(body["took_ms"], float) and body["took_ms"] >= 0
    results = body["results"]
    assert len(results) <= k
    for result in results:
        assert set(result) >= RESULT_KEYS
        assert str(uuid.UUID(result["id"])) == result["id"]
        assert isinstance(result["score"], float) and -1.0001 <= result["score"] <= 1.0001
        check_label(result["label"])
        assert 0.0 <= result["confidence"] <= 1.0
        assert result["thumb_url"] == f"/images/{result['id']}/thumb"
        assert result["image_url"] == f"/images/{result['id']}"
        assert (result["width"], result["height"]) == (320, 240)
        assert result["attribution"] is None or isinstance(result["attribution"], dict)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert len({r["id"] for r in results}) == len(results)
    # next_offset is the next page's offset, or null when this page is the last one.
    assert body.get("next_offset") in (offset + k, None)
    if len(results) < k:
        assert body["next_offset"] is None
    return results


def ids(body: dict[str, Any]) -> list[str]:
    """The result ids of a search answer, in order."""
    return [r["id"] for r in body["results"]]


# -- status ----------------------------------------------------------------------------------------------
def test_health(client: FlaskClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_ready_when_loaded(client: FlaskClient, encoder: ClipModel) -> None:
    response = client.get("/api/ready")
    assert response.status_code == 200
    assert response.json["ready"] is True
    assert response.json["model"] == encoder.model_name


def test_ready_is_503_while_loading(make_settings: Any) -> None:
    from api.factory import create_app

    app = create_app(make_settings(), load=False)
    client = app.test_client()
    error = assert_error(client.get("/api/ready"), 503, "not_ready")
    assert "loading" in error["message"]
    assert client.get("/api/ready").headers["Retry-After"]
    assert client.get("/api/health").status_code == 200


def test_loading_in_the_background_ends_ready_with_the_loaded_objects_frozen(make_settings: Any) -> None:
    import gc

    from api.factory import create_app

    gc.unfreeze()
    app = create_app(make_settings(), load=True)
    try:
        app.extensions["wonders"].wait_loaded(60)
        assert app.test_client().get("/api/ready").status_code == 200
        assert gc.get_freeze_count() > 0  # a full collection no longer walks the model and libraries
    finally:
        gc.unfreeze()
        app.extensions["wonders"].store.close()


def test_stats(client: FlaskClient, api_library: ApiLibrary, encoder: ClipModel) -> None:
    report_path = api_library.settings.crosscheck_report
    report_path.unlink(missing_ok=True)
    body = client.get("/api/stats").json
    assert body["points"] == LIBRARY_SIZE
    assert body["model"] == encoder.model_name
    assert body["dim"] == encoder.dim == 16
    assert sum(body["classes"].values()) == LIBRARY_SIZE
    assert body["crosscheck"] is None
    try:
        report = run_crosscheck(api_library.store, api_library.settings, samples=10)
        save_report(report, report_path)
        body = client.get("/api/stats").json
        assert body["crosscheck"] == report
        assert body["crosscheck"]["points"] == LIBRARY_SIZE
        assert 0.0 <= body["crosscheck"]["recall_at_k"] <= 1.0
    finally:
        report_path.unlink(missing_ok=True)


def test_classes_with_counts(client: FlaskClient) -> None:
    classes = client.get("/api/classes").json["classes"]
    assert len(classes) >= 3
    for entry in classes:
        check_label(entry)
        # `other` ("None of these") is a class without prompts: distractors and the threshold decide it.
        assert entry["id"] == "other" or entry["prompts"]
        assert all(isinstance(p, str) and p for p in entry["prompts"])
        assert isinstance(entry["count"], int) and entry["count"] >= 0
    assert sum(entry["count"] for entry in classes) == client.get("/api/stats").json["points"]
    assert len({entry["id"] for entry in classes}) == len(classes)


# -- text search -----------------------------------------------------------------------------------------
def test_text_search_get(client: FlaskClient) -> None:
    response = client.get("/api/search", query_string={"q": "the pyramids of Giza at sunset"})
    assert response.status_code == 200
    assert response.content_type.startswith("application/json")
    results = check_page(response.json, k=12)
    assert len(results) == 12


def test_text_search_post_matches_get(client: FlaskClient) -> None:
    query = "a waterfall in the mountains"
    got = client.get("/api/search", query_string={"q": query, "k": 7}).json
    posted = client.post("/api/search", json={"q": query, "k": 7})
    assert posted.status_code == 200
    check_page(posted.json, k=7)
    assert [(r["id"], r["score"]) for r in posted.json["results"]] == [
        (r["id"], r["score"]) for r in got["results"]
    ]


def test_long_cyrillic_query_via_post(client: FlaskClient) -> None:
    query = " ".join(["Красная площадь и собор Василия Блаженного зимним вечером"] * 50)
    assert len(query.encode("utf-8")) > 5000
    response = client.post("/api/search", json={"q": query, "k": 3})
    assert response.status_code == 200
    assert len(check_page(response.json, k=3)) == 3


@pytest.mark.parametrize(
    "query",
    [
        "Кремль ночью",
        "🏔️🌋 volcano 🔥",
        "👨‍👩‍👧 family at the Eiffel Tower",
        "الأهرامات في الجيزة",
        "מגדל דוד בירושלים",
        "zero\u200bwidth\u200cjoiner\u200d",
        "\u200b",
        "nul\x00byte",
        "e\u0301te\u0301 combining accents",
        "\ufeffbom and \U0001d54f math letters",
        "中文 日本語 한국어",
    ],
)
def test_any_unicode_text_works(client: FlaskClient, query: str) -> None:
    for response in (
        client.get("/api/search", query_string={"q": query, "k": 2}),
        client.post("/api/search", json={"q": query, "k": 2}),
    ):
        assert response.status_code == 200, response.get_data()[:300]
        assert len(check_page(response.json, k=2)) == 2


def test_text_over_77_tokens_is_truncated(client: FlaskClient) -> None:
    prefix = "a photo of the colourful rock layers of the rainbow mountains in Peru " * 8
    first = client.post("/api/search", json={"q": prefix + "with snow", "k": 20}).json
    second = client.post("/api/search", json={"q": prefix + "under a blue sky at noon", "k": 20}).json
    short = client.post("/api/search", json={"q": "with snow", "k": 20}).json
    # Everything after CLIP's 77 tokens is cut: the two long queries are the same query.
    assert [(r["id"], r["score"]) for r in first["results"]] == [
        (r["id"], r["score"]) for r in second["results"]
    ]
    assert [r["score"] for r in first["results"]] != [r["score"] for r in short["results"]]


def test_repeated_text_query_uses_the_cache(
    client: FlaskClient, encoder: ClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    original = encoder.text.encode_texts

    def spy(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return original(texts)

    monkeypatch.setattr(encoder.text, "encode_texts", spy)
    first = client.get("/api/search", query_string={"q": "Moscow Kremlin in winter"}).json
    again = client.get("/api/search", query_string={"q": "Moscow Kremlin in winter"}).json
    paged = client.get(
        "/api/search", query_string={"q": "  Moscow   Kremlin in winter ", "k": 3, "offset": 2}
    )
    posted = client.post("/api/search", json={"q": "Moscow Kremlin in winter", "k": 5})
    assert len(calls) == 1, calls
    assert ids(first) == ids(again)
    assert ids(paged.json) == ids(first)[2:5]
    assert ids(posted.json) == ids(first)[:5]
    client.get("/api/search", query_string={"q": "something else entirely"})
    assert len(calls) == 2
    assert client.get("/api/stats").json["query_cache"]["hits"] >= 3


# -- paging, class filter, min_score ---------------------------------------------------------------------
def test_k_defaults_to_12_and_goes_up_to_100(client: FlaskClient) -> None:
    default = client.get("/api/search", query_string={"q": "ruins"}).json
    assert default["k"] == 12 and len(default["results"]) == 12 and default["next_offset"] == 12
    everything = client.get("/api/search", query_string={"q": "ruins", "k": 100}).json
    assert len(check_page(everything, k=100)) == LIBRARY_SIZE
    assert everything["next_offset"] is None
    assert ids(everything)[:12] == ids(default)


@pytest.mark.parametrize("how", ["get", "post"])
def test_offset_pages_neither_overlap_nor_skip(client: FlaskClient, how: str) -> None:
    query = "a tower against the evening sky"

    def search(**params: Any) -> dict[str, Any]:
        if how == "get":
            return client.get("/api/search", query_string={"q": query, **params}).json
        return client.post("/api/search", json={"q": query, **params}).json

    full = ids(search(k=100))
    pages: list[str] = []
    offset: int | None = 0
    while offset is not None:
        body = search(k=5, offset=offset)
        check_page(body, k=5, offset=offset)
        pages += ids(body)
        offset = body["next_offset"]
        assert len(pages) <= LIBRARY_SIZE + 5
        # No empty last page: "load more" is offered only when more results exist.
        assert offset is None or offset < LIBRARY_SIZE
    assert pages == full
    assert len(set(pages)) == LIBRARY_SIZE
    beyond = search(k=5, offset=LIBRARY_SIZE + 3)
    assert beyond["results"] == [] and beyond["next_offset"] is None


def test_class_filter_restricts_labels(client: FlaskClient) -> None:
    counts = {c["id"]: c["count"] for c in client.get("/api/classes").json["classes"]}
    used = [class_id for class_id, count in counts.items() if count > 0]
    assert used
    for class_id in used:
        body = client.get("/api/search", query_string={"q": "a landmark", "class": class_id, "k": 100}).json
        results = check_page(body, k=100)
        assert len(results) == counts[class_id]
        assert {r["label"]["id"] for r in results} == {class_id}
    empty = next((class_id for class_id, count in counts.items() if count == 0), None)
    if empty is not None:
        assert client.get("/api/search", query_string={"q": "x", "class": empty}).json["results"] == []


def test_min_score_drops_results_below_it(client: FlaskClient) -> None:
    query = "a lake in the forest"
    scores = [
        r["score"] for r in client.get("/api/search", query_string={"q": query, "k": 100}).json["results"]
    ]
    assert len(scores) == LIBRARY_SIZE
    threshold = (scores[7] + scores[8]) / 2  # between two results, so rounding cannot matter
    body = client.get("/api/search", query_string={"q": query, "k": 100, "min_score": threshold}).json
    kept = check_page(body, k=100)
    assert len(kept) == 8
    assert all(r["score"] >= threshold for r in kept)
    assert client.get("/api/search", query_string={"q": query, "min_score": 1.0}).json["results"] == []
    everything = client.get("/api/search", query_string={"q": query, "k": 100, "min_score": -1}).json
    assert len(everything["results"]) == LIBRARY_SIZE


# -- image search, similar, classify ---------------------------------------------------------------------
def test_image_search_finds_the_same_photo(client: FlaskClient, api_library: ApiLibrary) -> None:
    relative, point_id = next(iter(api_library.ids.items()))
    data = (api_library.settings.images_dir / relative).read_bytes()
    response = client.post("/api/search/image?k=5", data=upload(data), content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data()[:300]
    results = check_page(response.json, k=5)
    assert results[0]["id"] == point_id
    assert results[0]["score"] > 0.99


def test_image_search_pages_and_filters(client: FlaskClient, api_library: ApiLibrary) -> None:
    data = jpeg_bytes(photo(77, (300, 200)))
    full = client.post("/api/search/image?k=100", data=upload(data)).json
    assert len(check_page(full, k=100)) == LIBRARY_SIZE
    page = client.post("/api/search/image?k=4&offset=3", data=upload(data)).json
    assert [r["id"] for r in check_page(page, k=4, offset=3)] == ids(full)[3:7]
    label = full["results"][0]["label"]["id"]
    filtered = client.post(f"/api/search/image?k=100&class={label}", data=upload(data)).json
    assert {r["label"]["id"] for r in filtered["results"]} == {label}


@pytest.mark.parametrize(
    "make", [lambda: palette_png(5), lambda: animated_gif(6), lambda: jpeg_bytes(photo(7).convert("L"))]
)
def test_image_search_accepts_other_formats(client: FlaskClient, make: Any) -> None:
    response = client.post("/api/search/image?k=2", data=upload(make(), "query.img"))
    assert response.status_code == 200, response.get_data()[:300]
    assert len(check_page(response.json, k=2)) == 2


def test_similar_excludes_itself_and_does_not_encode(
    client: FlaskClient, api_library: ApiLibrary, encoder: ClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_encoding(*args: Any, **kwargs: Any) -> np.ndarray:
        raise AssertionError("similar must use the stored vector, not encode")

    monkeypatch.setattr(encoder.image, "encode_images", no_encoding)
    monkeypatch.setattr(encoder.text, "encode_texts", no_encoding)
    point_id = api_library.ids[ATTRIBUTED]
    body = client.get(f"/api/images/{point_id}/similar").json
    results = check_page(body, k=12)
    assert len(results) == 12
    assert point_id not in ids(body)
    everything = client.get(f"/api/images/{point_id}/similar", query_string={"k": 100}).json
    assert len(everything["results"]) == LIBRARY_SIZE - 1
    assert point_id not in ids(everything)
    assert ids(everything)[:12] == ids(body)
    second = client.get(f"/api/images/{point_id}/similar", query_string={"k": 5, "offset": 5}).json
    assert [r["id"] for r in check_page(second, k=5, offset=5)] == ids(everything)[5:10]
    label = everything["results"][0]["label"]["id"]
    filtered = client.get(f"/api/images/{point_id}/similar", query_string={"class": label, "k": 100}).json
    assert filtered["results"] and {r["label"]["id"] for r in filtered["results"]} == {label}


def test_similar_accepts_any_spelling_of_the_id(client: FlaskClient, api_library: ApiLibrary) -> None:
    point_id = api_library.ids[ATTRIBUTED]
    canonical = ids(client.get(f"/api/images/{point_id}/similar").json)
    assert ids(client.get(f"/api/images/{point_id.upper()}/similar").json) == canonical


def test_classify(client: FlaskClient, api_library: ApiLibrary, encoder: ClipModel) -> None:
    data = jpeg_bytes(photo(4242, (640, 480)))
    response = client.post("/api/classify", data=upload(data))
    assert response.status_code == 200, response.get_data()[:300]
    body = response.json
    assert {"label", "confidence", "top3", "took_ms"} <= set(body)
    check_label(body["label"])
    top3 = body["top3"]
    assert len(top3) == 3
    for entry in top3:
        check_label(entry)
    confidences = [entry["confidence"] for entry in top3]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences)
    assert sum(confidences) <= 1.0 + 1e-6
    assert body["label"]["id"] == top3[0]["id"]
    assert body["confidence"] == pytest.approx(top3[0]["confidence"])
    assert isinstance(body["took_ms"], float)
    # The same scores as the classifier over the stored prompt vectors (what ingest labelled with).
    classifier = ZeroShotClassifier.load(api_library.store)
    assert classifier is not None
    decoded = decode_image(
        data, api_library.settings.max_image_pixels, min_side=2 * encoder.identity.image_size
    )
    expected = classifier.classify(encoder.image.encode_images([decoded.image]))[0]
    assert [entry["id"] for entry in top3] == [score.cls.id for score in expected.top3]
    assert confidences == pytest.approx([score.confidence for score in expected.top3], abs=1e-5)


def test_classify_agrees_with_the_stored_label(client: FlaskClient, api_library: ApiLibrary) -> None:
    path = api_library.settings.images_dir / ATTRIBUTED
    body = client.post("/api/classify", data=upload(path.read_bytes())).json
    meta = client.get(f"/api/images/{api_library.ids[ATTRIBUTED]}").json
    assert body["label"]["id"] == meta["label"]["id"]
    assert body["confidence"] == pytest.approx(meta["confidence"], abs=1e-3)


# -- one image: metadata, file, thumbnail ----------------------------------------------------------------
def test_image_metadata(client: FlaskClient, api_library: ApiLibrary) -> None:
    import hashlib

    point_id = api_library.ids[ATTRIBUTED]
    path = api_library.settings.images_dir / ATTRIBUTED
    response = client.get(f"/api/images/{point_id}")
    assert response.status_code == 200
    body = response.json
    assert body["id"] == point_id
    check_label(body["label"])
    assert 0.0 <= body["confidence"] <= 1.0
    assert len(body["top3"]) == 3 and body["top3"][0]["id"] == body["label"]["id"]
    assert (body["width"], body["height"]) == (320, 240)
    assert body["thumb_url"] == f"/images/{point_id}/thumb"
    assert body["image_url"] == f"/images/{point_id}"
    assert body["path"] == ATTRIBUTED
    assert body["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert body["bytes"] == path.stat().st_size
    assert body["format"] == "JPEG"
    assert body["attribution"]["author"] == "Jane Doe"
    assert body["attribution"]["license"] == "CC BY-SA 4.0"
    other = next(pid for rel, pid in api_library.ids.items() if rel != ATTRIBUTED)
    assert client.get(f"/api/images/{other}").json["attribution"] is None


def test_attribution_reaches_search_results(client: FlaskClient, api_library: ApiLibrary) -> None:
    everything = client.get("/api/search", query_string={"q": "a photo", "k": 100}).json["results"]
    by_id = {r["id"]: r for r in everything}
    assert by_id[api_library.ids[ATTRIBUTED]]["attribution"]["source"] == "wikimedia"
    assert sum(r["attribution"] is not None for r in everything) == 1


def test_image_file_by_id(client: FlaskClient, api_library: ApiLibrary) -> None:
    point_id = api_library.ids[ATTRIBUTED]
    response = client.get(f"/images/{point_id}")
    assert response.status_code == 200
    assert response.content_type == "image/jpeg"
    assert response.get_data() == (api_library.settings.images_dir / ATTRIBUTED).read_bytes()
    cache = response.headers["Cache-Control"]
    assert "immutable" in cache and re.search(r"max-age=\d+", cache)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    etag = response.headers["ETag"]
    assert client.get(f"/images/{point_id}", headers={"If-None-Match": etag}).status_code == 304
    head = client.head(f"/images/{point_id}")
    assert head.status_code == 200 and head.get_data() == b""


def test_thumbnail_by_id(client: FlaskClient, api_library: ApiLibrary) -> None:
    from core.thumbnails import thumb_path

    point_id = api_library.ids["south/photo_1.jpg"]
    response = client.get(f"/images/{point_id}/thumb")
    assert response.status_code == 200
    assert response.content_type == "image/jpeg"
    assert "immutable" in response.headers["Cache-Control"]
    thumb = Image.open(io.BytesIO(response.get_data()))
    assert thumb.format == "JPEG"
    assert max(thumb.size) <= api_library.settings.thumb_size
    # A missing thumbnail is made again from the photo.
    path = thumb_path(api_library.settings.thumbs_dir, point_id)
    path.unlink()
    again = client.get(f"/images/{point_id}/thumb")
    assert again.status_code == 200 and again.content_type == "image/jpeg"
    assert path.is_file()
    Image.open(io.BytesIO(again.get_data())).verify()


# -- uploads are never written ---------------------------------------------------------------------------
def test_uploads_are_never_written(client: FlaskClient, api_library: ApiLibrary) -> None:
    images, data = api_library.settings.images_dir, api_library.settings.data_dir
    before = (listing(images), listing(data))
    good = jpeg_bytes(photo(31337, (800, 600)))
    bad = [b"not an image", truncated_jpeg(9), declared_png(100_000, 100_000), b""]
    for payload in [good, *bad]:
        for path in ("/api/search/image", "/api/classify"):
            status = client.post(path, data=upload(payload, "../../evil.jpg")).status_code
            assert status == (200 if payload is good else 415)
    assert (listing(images), listing(data)) == before


# -- the OpenAPI document --------------------------------------------------------------------------------
def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _validate_openapi_3(spec: dict[str, Any]) -> None:
    """Validate against the official OpenAPI 3.0 schema: openapi-spec-validator if installed, else the
    copy of the same JSON schema that schemathesis bundles (skipped if neither is there)."""
    try:
        from openapi_spec_validator import validate

        validate(spec)
        return
    except ImportError:
        pass
    try:
        import jsonschema_rs
        from schemathesis.specs.openapi.definitions import OPENAPI_30
    except ImportError:
        return
    jsonschema_rs.Draft4Validator(OPENAPI_30).validate(spec)


def test_openapi_document(app: Flask, client: FlaskClient) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.content_type.startswith("application/json")
    spec = response.json
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"]
    _validate_openapi_3(spec)
    # Structure: every operation answers something, parameters are complete, every $ref resolves.
    for path, item in spec["paths"].items():
        assert path.startswith("/")
        declared = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert method in {"get", "post", "put", "patch", "delete", "head", "options"}
            assert operation["responses"], (path, method)
            assert all(
                code == "default" or re.fullmatch(r"[1-5]\d\d", code) for code in operation["responses"]
            )
            params = item.get("parameters", []) + operation.get("parameters", [])
            for param in params:
                assert (
                    param["in"] in {"query", "path", "header", "cookie"} and param["name"] and param["schema"]
                )
            assert {p["name"] for p in params if p["in"] == "path"} == declared, (path, method)
    for ref in _refs(spec):
        assert ref.startswith("#/"), ref
        node: Any = spec
        for part in ref[2:].split("/"):
            node = node[part]
    # Every API and file route is documented with its methods.
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/", "/images/")) or rule.rule == "/api/openapi.json":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in spec["paths"], path
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], (method, path)
    schemas = spec["components"]["schemas"]
    assert {"Result", "SearchResponse", "ClassifyResponse", "ErrorResponse", "ImageMeta"} <= set(schemas)
    assert set(schemas["Result"]["properties"]) >= RESULT_KEYS
