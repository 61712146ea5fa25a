"""gunicorn workers whose own refusals (a request line too long, a malformed request) answer
in MLflow's JSON shape, like every other error of the service, instead of gunicorn's HTML;
and whose threads never wait on a slow client's request head.

gunicorn answers these before any application code runs (`Worker.handle_error`); `serve`
runs these classes instead of gunicorn's `sync` and `gthread` (serving.gunicorn_argv).

Slow clients: gunicorn's gthread worker hands a connection to a pool thread as soon as one
byte is readable, and the thread then blocks reading the rest of the head with no timeout:
THREADS connections sending one byte each stop a worker. JsonErrorThreadWorker instead reads
the head in its event loop, without blocking, as bytes arrive; only a complete head (or one
longer than gunicorn would accept, for its parser to refuse) reaches a thread, and a
connection still without one SERVE_HEAD_TIMEOUT seconds after it opened is closed. Once a
thread serves the request, each read of the body waits at most SERVE_READ_TIMEOUT seconds for
a byte (TimedSocketUnreader): a progressing upload is never cut, writes are not limited (a
long download keeps streaming).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import select
import selectors
import time
from datetime import datetime
from functools import partial

from gunicorn import util
from gunicorn.http.errors import (
    LimitRequestHeaders,
    LimitRequestLine,
    NoMoreData,
    ParseException,
)
from gunicorn.http.unreader import SocketUnreader
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.gthread import TConn, ThreadWorker
from gunicorn.workers.sync import SyncWorker

# exception -> (status, reason, MLflow error code); any other ParseException is a 400.
REFUSALS: dict[type[Exception], tuple[int, str, str]] = {
    LimitRequestLine: (414, "URI Too Long", "REQUEST_LIMIT_EXCEEDED"),
    LimitRequestHeaders: (431, "Request Header Fields Too Large", "REQUEST_LIMIT_EXCEEDED"),
}
HINTS = {
    LimitRequestLine: " Send fewer ids per request (MLflow's own clients send at most 100).",
}


def refusal(exc: Exception) -> tuple[int, str, str, str]:
    """(status, reason, error code, message) of what gunicorn could not serve."""
    for kind, (status, reason, code) in REFUSALS.items():
        if isinstance(exc, kind):
            return status, reason, code, f"{exc}.{HINTS.get(kind, '')}"
    if isinstance(exc, ParseException):
        return 400, "Bad Request", "MALFORMED_REQUEST", f"Malformed HTTP request: {exc}"
    return 500, "Internal Server Error", "INTERNAL_ERROR", "Internal error; it has been logged."


def json_error(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error_code": code, "message": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
    return head.encode("latin-1") + body


class JsonErrors:
    """`handle_error` of gunicorn's Worker, answering in MLflow's JSON shape."""

    def handle_error(self, req, client, addr, exc) -> None:
        started = datetime.now()
        addr = addr or ("", -1)  # a unix socket
        status, reason, code, message = refusal(exc)
        if status < 500:
            self.log.warning("Invalid request from ip=%s: %s", addr[0], exc)
        else:
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
        if req is not None:
            self.log_access(req, client, addr, f"{status} {reason}", datetime.now() - started)
        try:
            util.write_nonblock(client, json_error(status, reason, code, message))
        except Exception:  # noqa: BLE001 - the client may be gone; gunicorn ignores it too
            self.log.debug("Failed to send error message.")

    def log_access(self, req, client, addr, status: str, took) -> None:
        environ = default_environ(req, client, self.cfg)
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = addr[0], str(addr[1])
        response = Response(req, client, self.cfg)
        response.status = status
        self.log.access(response, req, environ, took)


class JsonErrorSyncWorker(JsonErrors, SyncWorker):
    """gunicorn's `sync` worker, with JSON refusals."""


class SlowClient(NoMoreData):
    """A client that sent nothing for SERVE_READ_TIMEOUT seconds: handled like one gone."""

    def __str__(self) -> str:
        return "No data from the client for too long"


class TimedSocketUnreader(SocketUnreader):
    """gunicorn's socket reader, waiting at most `timeout` seconds for each chunk. Only reads
    wait: the socket stays blocking without a timeout, so writes (downloads) are unaffected."""

    def __init__(self, sock, timeout: float, buffered):
        super().__init__(sock)
        self.timeout = timeout
        self.buf = buffered  # what the head reader (or a previous request) left unread

    def chunk(self) -> bytes:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        if not poller.poll(self.timeout * 1000):
            raise SlowClient()
        return self.sock.recv(self.mxchunk)


# What the event loop buffers of one head: MLflow's clients send a few KiB (a bare
# `mlflow server` accepts 16 KiB); every open connection may hold this much in memory.
MAX_HEAD_BYTES = 64 * 1024
HEAD_TOO_LARGE = f"The request head is larger than {MAX_HEAD_BYTES} bytes."


def _timeouts() -> tuple[float, float]:
    from django.conf import settings  # loaded with the app, before the worker serves

    return settings.SERVE_HEAD_TIMEOUT, settings.SERVE_READ_TIMEOUT


class JsonErrorThreadWorker(JsonErrors, ThreadWorker):
    """gunicorn's `gthread` worker, with JSON refusals, reading request heads in its event
    loop (see the module docstring)."""

    def init_process(self) -> None:
        self._heads: dict[TConn, float] = {}  # connection -> when its head is too late
        super().init_process()

    def accept(self, server, listener) -> None:
        try:
            sock, client = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        conn = TConn(self.cfg, sock, client, server)
        conn.head = b""
        self.nr_conns += 1
        with self._lock:
            self._heads[conn] = time.monotonic() + _timeouts()[0]
            self.poller.register(conn.sock, selectors.EVENT_READ,
                                 partial(self.on_client_socket_readable, conn))  # fmt: skip

    def on_client_socket_readable(self, conn, client) -> None:
        if self.cfg.is_ssl:
            return super().on_client_socket_readable(conn, client)
        with self._lock:
            if conn.initialized and conn in self._keep:  # kept alive: its next request begins
                self._keep.remove(conn)
                conn.head = b""
                self._heads[conn] = time.monotonic() + _timeouts()[0]
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            return self.drop(conn)
        self.took(conn, data)

    def took(self, conn, data: bytes) -> None:
        """Bytes of a request head: hand the connection to a thread once the head is whole."""
        conn.head += data
        if len(conn.head) > MAX_HEAD_BYTES and b"\n\n" not in conn.head.replace(b"\r", b""):
            with contextlib.suppress(OSError):  # a best effort: the client may not read
                conn.sock.send(json_error(431, "Request Header Fields Too Large",
                                          "REQUEST_LIMIT_EXCEEDED", HEAD_TOO_LARGE))  # fmt: skip
            return self.drop(conn)
        if b"\n\n" in conn.head.replace(b"\r", b""):  # the head is complete
            with self._lock:
                self.poller.unregister(conn.sock)
                self._heads.pop(conn, None)
            self.enqueue_req(conn)

    def enqueue_req(self, conn) -> None:
        conn.init()
        unreader = conn.parser.unreader
        if not self.cfg.is_ssl and not isinstance(unreader, TimedSocketUnreader):
            unreader = TimedSocketUnreader(conn.sock, _timeouts()[1], unreader.buf)
            conn.parser.unreader = unreader
        unreader.unread(getattr(conn, "head", b""))
        conn.head = b""
        fs = self.tpool.submit(self.handle, conn)
        self._wrap_future(fs, conn)

    def handle_request(self, req, conn) -> bool:
        keepalive = super().handle_request(req, conn)
        if keepalive and not self.cfg.is_ssl:
            # The event loop reads the next head itself, so the rest of a body the application
            # left unread (a refused upload the client sent whole) is discarded here, in this
            # thread, as gunicorn's parser does before it parses the next request. What was
            # read past this request (the next one's head) goes back to the event loop.
            while req.body.read(65536):
                pass
            unreader = conn.parser.unreader
            conn.pending = unreader.buf.getvalue()
            unreader.buf = io.BytesIO()
        return keepalive

    def finish_request(self, fs) -> None:
        super().finish_request(fs)
        conn = fs.conn
        pending, conn.pending = getattr(conn, "pending", b""), b""
        with self._lock:
            kept = pending and conn in self._keep
            if kept:  # its next request has (partly) arrived already: no socket event will say
                self._keep.remove(conn)
                self._heads[conn] = time.monotonic() + _timeouts()[0]
        if kept:
            self.took(conn, pending)

    def drop(self, conn) -> None:
        """Close a connection the event loop holds (gone, or too slow with its head)."""
        with self._lock:
            self._heads.pop(conn, None)
            with contextlib.suppress(KeyError, ValueError, OSError):  # already unregistered
                self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def murder_keepalived(self) -> None:
        super().murder_keepalived()
        now = time.monotonic()
        with self._lock:
            late = [conn for conn, deadline in self._heads.items() if deadline < now]
        for conn in late:
            self.log.debug("Closing a connection whose request head came too slowly")
            self.drop(conn)
