"""gunicorn workers whose own refusals (a request line too long, a malformed request) answer
in MLflow's JSON shape, like every other error of the service, instead of gunicorn's HTML.

gunicorn answers these before any application code runs (`Worker.handle_error`); `serve`
runs these classes instead of gunicorn's `sync` and `gthread` (serving.gunicorn_argv).
"""

from __future__ import annotations

import json
from datetime import datetime

from gunicorn import util
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine, ParseException
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.gthread import ThreadWorker
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


class JsonErrorThreadWorker(JsonErrors, ThreadWorker):
    """gunicorn's `gthread` worker, with JSON refusals."""
