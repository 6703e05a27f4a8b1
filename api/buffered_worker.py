"""gunicorn's gthread worker, with each request read in full before a thread is given to it.

gthread hands a connection to one of its few threads (GUNICORN_THREADS) as soon as a byte arrives; a
client that then sends its headers or body slowly holds that thread, and four such clients stop
`make run`. Here the worker's event loop reads every request itself, without blocking, into a buffer:
headers within REQUEST_HEADER_TIMEOUT_S, the body within REQUEST_BODY_TIMEOUT_S, at most the upload limit.
Only a complete request goes to a thread, where gunicorn's own parser reads it from that buffer; a slow
client costs a buffer and a file descriptor, never a thread. A client that runs out of time gets a 408,
an oversize body a 413, a transfer coding other than `chunked` a 501 (a request-smuggling shape
behind proxies that read `gzip, chunked` otherwise) — each in the API's JSON error shape, then the
connection closes.

Liveness (`GET /api/health`) runs on a thread of its own, so it answers while every request thread
waits on a hung store.

Why a subclass and not another server: the product is a Flask API under gunicorn (DESIGN), and gunicorn
27's gthread already has the event loop; what it lacks is reading before dispatch. This class reuses
gunicorn's connection (`TConn`), parser and request handling unchanged and adds only the buffering, so
it is pinned to the gunicorn version in requirements.txt (tests/test_hardening.py runs it for real).
"""

from __future__ import annotations

import contextlib
import errno
import re
import selectors
import socket
import time
from concurrent import futures
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from api.error_body import CONTENT_TYPE, error_body
from core.settings import load_settings

# Multipart framing around the uploaded file (the same allowance as api/factory.py).
MULTIPART_OVERHEAD = 64 * 1024
# An oversize body up to this many times the limit is read and dropped before the 413, so a client
# still sending gets the answer instead of a reset connection (as api/factory.py does).
DRAIN_FACTOR = 4
MAX_HEAD_BYTES = 64 * 1024
RECV_BYTES = 256 * 1024
_HEALTH = re.compile(rb"^(GET|HEAD) /api/health(\?[^ ]*)? HTTP/1\.[01]\r\n")
_CHUNK_SIZE = re.compile(rb"^([0-9A-Fa-f]{1,16})(;[^\r\n]*)?$")

ERRORS = {
    400: ("Bad Request", "bad_request", "The request is not valid HTTP."),
    408: ("Request Timeout", "request_timeout", "The request was not sent in time."),
    413: ("Payload Too Large", "payload_too_large", "The upload is larger than this server accepts."),
    431: ("Request Header Fields Too Large", "headers_too_large", "The request headers are too large."),
    501: ("Not Implemented", "not_implemented", "This transfer coding is not supported."),
}


def error_bytes(status: int) -> bytes:
    """A whole HTTP response in the API's error shape that closes the connection."""
    reason, code, message = ERRORS[status]
    body = error_body(code, message)
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {CONTENT_TYPE}\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


@dataclass
class _Reading:
    """A request being read: its bytes so far and where the parse of them stands."""

    conn: TConn
    buf: bytearray
    started: float
    head_end: int | None = None  # index just past the blank line ending the headers
    body_started: float = 0.0
    length: int | None = None  # Content-Length of the body
    chunked: bool = False
    chunk_pos: int = 0  # where the next chunk-size line starts (chunked bodies)
    discard: int = 0  # oversize body bytes still to read and drop before the 413
    extra: dict[str, Any] = field(default_factory=dict)


class BufferedThreadWorker(ThreadWorker):
    """gthread, with requests read in full by the event loop first; see the module docstring."""

    def init_process(self) -> None:
        """Read the timeouts and limits, and start the liveness thread, before serving."""
        settings = load_settings()
        self.header_timeout = settings.request_header_timeout_s
        self.body_timeout = settings.request_body_timeout_s
        self.max_body = settings.max_upload_bytes + MULTIPART_OVERHEAD
        self.reading: dict[TConn, _Reading] = {}
        self.stopping_since: float | None = None
        self.health_pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="health")
        super().init_process()

    # -- where gthread would hand a connection to a thread, read it first -----------------------------
    def accept(self, listener: socket.socket) -> None:
        """Accept a connection and start reading its first request in the event loop."""
        try:
            client_sock, client_addr = listener.accept()
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())  # non-blocking
        self._start_reading(conn, b"")

    def enqueue_req(self, conn: TConn) -> None:
        """A kept-alive connection that became readable, or bytes already read past the last request."""
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        self._start_reading(conn, leftover or b"")

    def _start_reading(self, conn: TConn, initial: bytes) -> None:
        if self.cfg.is_ssl:  # TLS is nginx's job here; keep gthread's own path for it
            super().enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        state = _Reading(conn, bytearray(initial), time.monotonic())
        self.reading[conn] = state
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, state))
        if initial:
            self._progress(state)

    def _on_readable(self, state: _Reading, sock: socket.socket) -> None:
        try:
            data = sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(state)
            return
        if not data:  # the client stopped sending: mid-request, it may still read why (a half-close)
            if state.buf or state.discard:
                self._refuse(state, 400)
            else:
                self._drop(state)
            return
        if state.discard:
            taken = min(state.discard, len(data))
            state.discard -= taken
            if not state.discard:
                self._refuse(state, 413)
            return
        state.buf += data
        self._progress(state)

    # -- how much of the request is there --------------------------------------------------------------
    def _progress(self, state: _Reading) -> None:
        if state.head_end is None and not self._read_head(state):
            return
        assert state.head_end is not None
        if state.chunked:
            done = self._chunked_done(state)
            if done is None:
                return
            if done is False:
                self._refuse(state, 400)
                return
        elif len(state.buf) - state.head_end < (state.length or 0):
            return
        self._dispatch(state)

    def _read_head(self, state: _Reading) -> bool:
        """Find the end of the headers and the body's framing; False while more is needed or refused."""
        end = state.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(state.buf) > MAX_HEAD_BYTES:
                self._refuse(state, 431)
            return False
        if end > MAX_HEAD_BYTES:
            self._refuse(state, 431)
            return False
        state.head_end = end + 4
        state.body_started = time.monotonic()
        lengths, codings, expect = [], [], False
        for line in bytes(state.buf[:end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                lengths.append(value.strip())
            elif name == b"transfer-encoding":
                codings += [c.strip().lower() for c in value.split(b",")]
            elif name == b"expect" and value.strip().lower() == b"100-continue":
                expect = True
        if codings:
            if codings != [b"chunked"]:
                self._refuse(state, 501)
                return False
            if lengths:  # both framings: gunicorn refuses it, without reading a body
                return True
            state.chunked = True
            state.chunk_pos = state.head_end
        elif lengths:
            if len(set(lengths)) != 1 or not lengths[0].isdigit():
                return True  # gunicorn answers 400 without reading a body
            state.length = int(lengths[0])
            if state.length > self.max_body:
                self._oversize(state)
                return False
        if expect and (state.chunked or state.length):
            self._send(state, b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def _chunked_done(self, state: _Reading) -> bool | None:
        """True once the whole chunked body is there, None while more is needed, False when malformed."""
        buf = state.buf
        assert state.head_end is not None
        while True:
            line_end = buf.find(b"\r\n", state.chunk_pos)
            if line_end < 0:
                return False if len(buf) - state.chunk_pos > 1024 else None
            match = _CHUNK_SIZE.match(bytes(buf[state.chunk_pos : line_end]))
            if match is None:
                return False
            size = int(match.group(1), 16)
            if size == 0:
                # Trailers end with an empty line; none is the usual case.
                trailer_end = buf.find(b"\r\n", line_end + 2)
                while trailer_end >= 0 and trailer_end != line_end + 2:
                    line_end = trailer_end
                    trailer_end = buf.find(b"\r\n", line_end + 2)
                return True if trailer_end >= 0 else None
            if len(buf) - state.head_end > self.max_body:
                self._refuse(state, 413)
                return None
            nxt = line_end + 2 + size + 2
            if len(buf) < nxt:
                return None
            state.chunk_pos = nxt

    def _oversize(self, state: _Reading) -> None:
        assert state.head_end is not None and state.length is not None
        if state.length > DRAIN_FACTOR * self.max_body:
            self._refuse(state, 413)
            return
        already = len(state.buf) - state.head_end
        state.discard = state.length - already
        state.buf.clear()
        if state.discard <= 0:
            self._refuse(state, 413)

    # -- the three ways out: to a thread, refused, dropped -----------------------------------------------
    def _dispatch(self, state: _Reading) -> None:
        conn = state.conn
        self._forget(state)
        conn.init()  # gunicorn's parser over the socket (the thread makes it blocking)
        conn.parser.unreader.unread(bytes(state.buf))
        conn.data_ready = True
        pool = self.health_pool if _HEALTH.match(state.buf) else self.tpool
        future = pool.submit(self.handle, conn)
        future.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))

    def _refuse(self, state: _Reading, status: int) -> None:
        self._send(state, error_bytes(status))
        self._drop(state)

    def _send(self, state: _Reading, data: bytes) -> None:
        with contextlib.suppress(OSError):  # best effort: a few hundred bytes fit any socket buffer
            state.conn.sock.send(data)

    def _drop(self, state: _Reading) -> None:
        self._forget(state)
        self.nr_conns -= 1
        state.conn.close()

    def _forget(self, state: _Reading) -> None:
        self.reading.pop(state.conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(state.conn.sock)

    # -- timeouts, checked by gthread's loop about once a second ---------------------------------------
    def murder_pending(self) -> None:
        """gthread's own check, then requests that ran out of time.

        A stopping worker (recycled by --max-requests, or told to stop) still finishes every request
        it has begun reading: the client may be sending it on a kept-alive connection, and dropping it
        would reset that client. Only connections with nothing read yet are closed, after the same
        short linger gthread gives its kept-alive connections; gthread's graceful timeout bounds the
        rest. Those requests are answered with `Connection: close` (the worker is no longer alive).
        """
        super().murder_pending()
        now = time.monotonic()
        if not self.alive and self.stopping_since is None:
            self.stopping_since = now
        for state in list(self.reading.values()):
            if (state.head_end is None and now - state.started > self.header_timeout) or (
                state.head_end is not None and now - state.body_started > self.body_timeout
            ):
                self._refuse(state, 408)
            elif (
                self.stopping_since is not None
                and not state.buf
                and not state.discard
                and now - max(state.started, self.stopping_since) > STOP_KEEPALIVE_LINGER
            ):
                self._drop(state)

    def run(self) -> None:
        """gthread's loop; the liveness thread stops with it."""
        try:
            super().run()
        finally:
            self.health_pool.shutdown(wait=False)
