"""The web service's nginx, run for real (tests/nginx_support.py renders the compose stack's template).

It runs in front of:
  - a small stub HTTP server standing in for the API: proxying, uploads, thumbnail caching, gzip;
  - the real gunicorn app with the tiny CLIP (the `live_server` fixture of tests/conftest.py).
nginx's own JSON errors are checked with every other producer's in tests/test_error_shape.py.

Needs Debian's `nginx` package (apt-get install nginx); skipped with that reason where it is missing.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.api_helpers", "tests.nginx_support")

import hashlib  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import requests  # noqa: E402
import yaml  # noqa: E402

from tests.api_helpers import assert_error  # noqa: E402
from tests.nginx_support import (  # noqa: E402
    COMPOSE_FILE,
    COMPUTED_AT_START,
    REPO,
    SEARCH_RESULTS,
    TEMPLATE_VAR,
    THUMB_BYTES,
    UPLOAD_LIMIT_HOOK,
    WEB_DIR,
    NativeNginx,
    StubApi,
    make_nginx,
    needs_nginx,
    session,
    template_text,
    upload_limit_hook,
    upload_limits,
)

pytest_plugins = ["tests.nginx_support"]

# ---------------------------------------------------------------------------------------------------------
# The configuration itself


def test_template_variables_are_the_ones_compose_gives_the_web_service() -> None:
    used = set(TEMPLATE_VAR.findall(template_text()))
    assert used, "the template uses no variables"
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    env = compose["services"]["web"]["environment"]
    filt = env["NGINX_ENVSUBST_FILTER"]
    # The image substitutes only variables matching the filter: nginx's own $variables are left alone.
    assert all(re.search(filt, name) for name in used)
    missing = used - set(env) - COMPUTED_AT_START
    assert not missing, f"the template needs variables docker-compose.yml does not set: {sorted(missing)}"
    assert env.get("NGINX_ENTRYPOINT_LOCAL_RESOLVERS"), "NGINX_LOCAL_RESOLVERS is only set when this is on"
    # The web service and the API get the same upload limit.
    api_env = compose["services"]["api"]["environment"]
    assert env["NGINX_MAX_UPLOAD_MB"] == api_env["MAX_UPLOAD_MB"] == "${MAX_UPLOAD_MB:-20}"
    # The hook is mounted where the entrypoint sources it, before 20-envsubst-on-templates.sh.
    mounts = compose["services"]["web"]["volumes"]
    assert (
        f"./{UPLOAD_LIMIT_HOOK.relative_to(REPO)}:/docker-entrypoint.d/{UPLOAD_LIMIT_HOOK.name}:ro" in mounts
    )
    assert "15-" < UPLOAD_LIMIT_HOOK.name < "20-"


def test_template_variables_are_always_braced() -> None:
    """The image's envsubst also replaces $NAME: only ${NGINX_...} may name an environment variable."""
    text = template_text()
    assert not re.search(r"\$NGINX_", text)
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(TEMPLATE_VAR.findall(text))


@pytest.mark.parametrize(
    ("mb", "body_size", "text"),
    [("20", "20544k", "20"), ("20.0", "20544k", "20"), ("2.5", "2624k", "2.5"), ("1", "1088k", "1")],
)
def test_upload_limit_hook_adds_the_api_multipart_allowance(mb: str, body_size: str, text: str) -> None:
    from api.factory import MULTIPART_OVERHEAD
    from core.settings import Settings

    assert os.access(UPLOAD_LIMIT_HOOK, os.X_OK), "the image's entrypoint ignores hooks without the exec bit"
    assert upload_limits(mb) == (body_size, text)
    settings = Settings(_env_file=None, max_upload_mb=float(mb))  # type: ignore[call-arg]
    assert int(body_size.removesuffix("k")) * 1024 == settings.max_upload_bytes + MULTIPART_OVERHEAD
    assert f"{settings.max_upload_mb:g}" == text  # the API's own 413 message writes it so


@pytest.mark.parametrize("bad", ["abc", "1.2.3", "20m", "-1"])
def test_upload_limit_hook_refuses_nonsense(bad: str) -> None:
    result = upload_limit_hook(bad)
    assert result.returncode != 0
    assert "MAX_UPLOAD_MB" in result.stderr


def test_pages_get_the_api_content_security_policy() -> None:
    from api.web import CSP

    match = re.search(r'"~\^text/html"\s+"([^"]+)";', template_text())
    assert match, "no CSP for text/html in the template"
    assert match.group(1) == CSP


def test_template_settings() -> None:
    text = template_text()
    assert re.search(r"client_max_body_size\s+\$\{NGINX_CLIENT_MAX_BODY_SIZE\};", text)
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        match = re.search(rf"{directive}\s+(\d+)s;", text)
        assert match and int(match.group(1)) >= 60, f"{directive} should allow slow CPU encodes"
    assert re.search(r"^\s*gzip on;", text, re.M)
    gzip_types = re.search(r"gzip_types([^;]+);", text)
    assert gzip_types
    for mime in ("application/json", "application/javascript", "text/css"):
        assert mime in gzip_types.group(1)
    assert re.search(r"error_page\s+413\s+@payload_too_large;", text)


@needs_nginx
def test_nginx_accepts_the_rendered_config_with_the_repo_web_root(tmp_path: Path) -> None:
    nginx = make_nginx(tmp_path, "127.0.0.1:9", WEB_DIR, "20")
    result = nginx.check()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@needs_nginx
def test_nginx_refuses_a_broken_render(tmp_path: Path) -> None:
    """The check above is a real check: a value the template cannot take fails `nginx -t`."""
    nginx = make_nginx(tmp_path, "127.0.0.1:9", WEB_DIR, "20")
    conf = nginx.prefix / "wonders.conf"
    text = conf.read_text()
    assert "client_max_body_size 20544k;" in text
    conf.write_text(text.replace("client_max_body_size 20544k;", "client_max_body_size 20.5m;"))
    assert nginx.check().returncode != 0


# ---------------------------------------------------------------------------------------------------------
# In front of the stub API


@needs_nginx
def test_search_is_proxied_with_query_and_forwarded_headers(
    nginx_stub: NativeNginx, stub_api: StubApi
) -> None:
    r = session().get(f"{nginx_stub.url}/api/search", params={"q": "Eiffel Tower at night", "k": "12"})
    assert r.status_code == 200
    assert r.json()["query"] == "q=Eiffel+Tower+at+night&k=12"
    (seen,) = stub_api.requests_to("/api/search")
    assert seen.headers["X-Forwarded-For"] == "127.0.0.1"
    assert seen.headers["X-Forwarded-Proto"] == "http"
    assert seen.headers["Host"] == f"127.0.0.1:{nginx_stub.port}"


@needs_nginx
def test_multipart_upload_reaches_the_api_intact(nginx_stub: NativeNginx, stub_api: StubApi) -> None:
    payload = os.urandom(700 * 1024)  # under the 1 MB limit of this nginx
    r = session().post(
        f"{nginx_stub.url}/api/search/image",
        files={"image": ("photo.jpg", payload, "image/jpeg")},
        data={"k": "12"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    (seen,) = stub_api.requests_to("/api/search/image")
    assert body["received"] == int(r.request.headers["Content-Length"]) == seen.body_len
    assert body["sha256"] == hashlib.sha256(r.request.body).hexdigest()  # type: ignore[arg-type]
    assert body["content_type"] == r.request.headers["Content-Type"]
    assert body["content_type"].startswith("multipart/form-data; boundary=")


@needs_nginx
def test_a_photo_of_exactly_the_limit_passes(nginx_stub: NativeNginx, stub_api: StubApi) -> None:
    r = session().post(
        f"{nginx_stub.url}/api/classify",
        files={"image": ("photo.jpg", os.urandom(1024 * 1024), "image/jpeg")},  # MAX_UPLOAD_MB=1
        timeout=30,
    )
    assert r.status_code == 200
    assert r.json()["received"] > 1024 * 1024  # the photo plus its multipart framing


@needs_nginx
def test_thumbnails_are_cacheable_for_a_day_and_cached_by_nginx(
    nginx_stub: NativeNginx, stub_api: StubApi
) -> None:
    s = session()
    url = f"{nginx_stub.url}/images/0123abcd-0000-0000-0000-000000000000/thumb"
    first = s.get(url)
    second = s.get(url)
    for r in (first, second):
        assert r.status_code == 200
        assert r.content == THUMB_BYTES
        assert r.headers["Content-Type"] == "image/jpeg"
        # The API's own "no-cache" is replaced, not doubled.
        assert r.headers["Cache-Control"] == "public, max-age=86400, immutable"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert first.headers["X-Cache-Status"] == "MISS"
    assert second.headers["X-Cache-Status"] == "HIT"
    assert len(stub_api.requests_to("/images/0123abcd-0000-0000-0000-000000000000/thumb")) == 1
    # Revalidation works on the cached copy.
    revalidated = s.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert revalidated.status_code == 304


@needs_nginx
def test_full_images_are_cacheable_by_browsers(nginx_stub: NativeNginx) -> None:
    r = session().get(f"{nginx_stub.url}/images/0123abcd-0000-0000-0000-000000000000")
    assert r.status_code == 200
    assert r.content == THUMB_BYTES * 4
    assert r.headers["Cache-Control"] == "public, max-age=86400"


@needs_nginx
def test_json_js_and_css_are_gzipped(nginx_stub: NativeNginx) -> None:
    s = session()
    headers = {"Accept-Encoding": "gzip"}
    search = s.get(f"{nginx_stub.url}/api/search", params={"q": "pyramids"}, headers=headers)
    assert search.headers.get("Content-Encoding") == "gzip"
    assert search.json()["results"] == SEARCH_RESULTS  # requests decompresses
    for name in ("app.js", "style.css"):
        r = s.get(f"{nginx_stub.url}/{name}", headers=headers)
        assert r.status_code == 200
        assert r.headers.get("Content-Encoding") == "gzip", name
    thumb = s.get(f"{nginx_stub.url}/images/abc/thumb", headers=headers)
    assert "Content-Encoding" not in thumb.headers  # JPEG is not compressed again


@needs_nginx
def test_static_ui_is_served_and_revalidated(nginx_stub: NativeNginx) -> None:
    s = session()
    r = s.get(f"{nginx_stub.url}/")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "Wonders" in r.text
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "Content-Security-Policy" not in s.get(f"{nginx_stub.url}/app.js").headers
    again = s.get(f"{nginx_stub.url}/", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304
    assert s.get(f"{nginx_stub.url}/.env").status_code == 404
    assert s.get(f"{nginx_stub.url}/missing.js").status_code == 404
    health = s.get(f"{nginx_stub.url}/nginx-health")
    assert health.status_code == 200 and health.text == "ok\n"


@needs_nginx
def test_api_errors_pass_through_untouched(nginx_stub: NativeNginx) -> None:
    r = session().get(f"{nginx_stub.url}/api/ready")
    assert_error(r, 503, "not_ready")
    assert r.json() == {"error": {"code": "not_ready", "message": "stub: the model is loading"}}


# ---------------------------------------------------------------------------------------------------------
# In front of the real API


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def live_api(request: pytest.FixtureRequest) -> Any:
    """The real app under gunicorn (tests/conftest.py's `live_server`)."""
    try:
        return request.getfixturevalue("live_server")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py provides no `live_server` fixture yet")


def live_upload_limit_mb(live_api: Any) -> str:
    """MAX_UPLOAD_MB of the live server (its environment, else the app's default)."""
    from core.settings import Settings

    env = getattr(live_api, "env", {}) or {}
    return str(env.get("MAX_UPLOAD_MB") or Settings.model_fields["max_upload_mb"].default)


@needs_nginx
@pytest.mark.slow
def test_nginx_in_front_of_the_real_gunicorn(live_api: Any, nginx_factory: Any) -> None:
    api = urlsplit(live_api.url)
    limit_mb = live_upload_limit_mb(live_api)
    nginx: NativeNginx = nginx_factory(f"{api.hostname}:{api.port}", web_root=WEB_DIR, max_upload_mb=limit_mb)
    s = session()
    base = nginx.url

    assert s.get(f"{base}/api/health", timeout=30).status_code == 200
    assert s.get(f"{base}/api/ready", timeout=60).status_code == 200

    found = s.get(f"{base}/api/search", params={"q": "a photo of a waterfall", "k": "3"}, timeout=60)
    assert found.status_code == 200, found.text
    results = found.json()["results"]
    assert results, "the live server's library should not be empty"

    thumb_url = results[0]["thumb_url"]
    first = s.get(base + thumb_url, timeout=30)
    second = s.get(base + thumb_url, timeout=30)
    assert first.status_code == second.status_code == 200
    assert first.headers["Content-Type"].startswith("image/")
    assert first.headers["Cache-Control"] == "public, max-age=86400, immutable"
    assert (first.headers["X-Cache-Status"], second.headers["X-Cache-Status"]) == ("MISS", "HIT")
    assert first.content == second.content
    assert s.get(base + results[0]["image_url"], timeout=30).status_code == 200

    photo = {"image": ("q.png", png_bytes(), "image/png")}
    by_image = s.post(f"{base}/api/search/image", files=photo, timeout=120)
    assert by_image.status_code == 200, by_image.text
    assert by_image.json()["results"]
    classified = s.post(f"{base}/api/classify", files=photo, timeout=120)
    assert classified.status_code == 200, classified.text

    # The API's own errors pass through nginx unchanged.
    missing = s.get(f"{base}/api/images/00000000-0000-0000-0000-000000000000", timeout=30)
    assert_error(missing, 404, "not_found")

    # nginx and the API draw the upload line at the same place. A photo of exactly MAX_UPLOAD_MB passes
    # both (and is refused for what it is: random bytes, not an image).
    limit_bytes = int(float(limit_mb) * 1024 * 1024)

    def upload(size: int) -> requests.Response:
        files = {"image": ("big.jpg", os.urandom(size), "image/jpeg")}
        return s.post(f"{base}/api/search/image", files=files, timeout=120)

    at_limit = upload(limit_bytes)
    assert_error(at_limit, 415, "unsupported_image")
    # One byte more: nginx lets the request through (it fits the framing allowance) and the API refuses it.
    by_api = upload(limit_bytes + 1)
    assert_error(by_api, 413, "payload_too_large")
    assert "X-Cache-Status" not in by_api.headers
    # Far more: nginx refuses it before the API sees it, with the same answer.
    by_nginx = upload(limit_bytes + 256 * 1024)
    assert_error(by_nginx, 413, "payload_too_large")
    assert by_nginx.json() == by_api.json()

    if (WEB_DIR / "index.html").is_file():
        page = s.get(f"{base}/", timeout=30)
        assert page.status_code == 200
        assert page.headers["Content-Type"].startswith("text/html")
        assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
