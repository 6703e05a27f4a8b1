"""A polite HTTP session: descriptive User-Agent, a rate limit, and retries with exponential backoff."""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

USER_AGENT = "Wonders/0.1 (self-hosted image search; https://github.com/wonders)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_CONNECTION_RETRIES = 2  # a host that cannot be reached at all rarely comes back within seconds

log = logging.getLogger(__name__)


_SECRET_PARAM = re.compile(r"((?:api_?)?key=)[^&\s'\"]+", re.IGNORECASE)
_CAUSED_BY = re.compile(r"\(Caused by (.*)\)\s*$", re.DOTALL)


def redact(text: str) -> str:
    """Hide API keys that a URL inside an error message may carry."""
    return _SECRET_PARAM.sub(r"\1***", text)


_PLAIN_CAUSES = (
    ("Failed to resolve", "the host name cannot be resolved"),
    ("Name or service not known", "the host name cannot be resolved"),
    ("Connection refused", "connection refused"),
    ("timed out", "timed out"),
    ("Network is unreachable", "network is unreachable"),
    ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
)


def describe_error(err: BaseException) -> str:
    """A short, key-free description of a network error ('the host name cannot be resolved', ...)."""
    text = str(err)
    for marker, plain in _PLAIN_CAUSES:
        if marker in text:
            return plain
    caused = _CAUSED_BY.search(text)
    return redact(caused.group(1) if caused else text) or type(err).__name__


class HostUnreachableError(ConnectionError):
    """A host could not be reached at all (DNS, refused connection, timeouts), even after retries."""

    def __init__(self, host: str, cause: BaseException) -> None:
        super().__init__(f"cannot reach {host}: {describe_error(cause)}; check your internet connection")
        self.host = host


class HttpError(RuntimeError):
    """The server answered with an error status (after retries where retrying made sense)."""

    def __init__(self, url: str, status: int, detail: str = "") -> None:
        message = f"HTTP {status} from {redact(url)}"
        super().__init__(f"{message}: {redact(detail)}" if detail else message)
        self.url = url
        self.status = status


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


class PoliteSession:
    """GET with a minimum delay between requests, and retries on 429, 5xx and connection errors.

    The wait before retry n (1-based) is `backoff * 2**(n-1)`, or the server's Retry-After when it gives
    one; every wait is capped at `max_wait` seconds.
    """

    def __init__(
        self,
        *,
        delay: float = 0.5,
        retries: int = 5,
        backoff: float = 2.0,
        max_wait: float = 120.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delay = delay
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._last_request: float | None = None
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    def close(self) -> None:
        """Close the underlying connections."""
        self.session.close()

    def _throttle(self) -> None:
        if self._last_request is not None and self.delay > 0:
            wait = self.delay - (self._clock() - self._last_request)
            if wait > 0:
                self._sleep(wait)
        self._last_request = self._clock()

    def _backoff_wait(self, attempt: int, retry_after: float | None) -> float:
        wait = retry_after if retry_after is not None else self.backoff * 2 ** (attempt - 1)
        return min(wait, self.max_wait)

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """GET `url` with retries; a 2xx response, else HttpError or HostUnreachableError."""
        host = urlsplit(url).netloc or url
        attempt = 0
        while True:
            self._throttle()
            try:
                response = self.session.get(
                    url, params=params, stream=stream, headers=headers, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as err:
                attempt += 1
                if attempt > min(self.retries, MAX_CONNECTION_RETRIES):
                    raise HostUnreachableError(host, err) from err
                wait = self._backoff_wait(attempt, None)
                log.info("cannot reach %s (%s); retry %d in %.1f s", host, type(err).__name__, attempt, wait)
                self._sleep(wait)
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                attempt += 1
                wait = self._backoff_wait(attempt, parse_retry_after(response.headers.get("Retry-After")))
                log.info("HTTP %d from %s; retry %d in %.1f s", response.status_code, host, attempt, wait)
                response.close()
                self._sleep(wait)
                continue
            if response.status_code >= 400:
                detail = "" if stream else " ".join(response.text.split())[:200]
                response.close()
                raise HttpError(url, response.status_code, detail)
            return response
