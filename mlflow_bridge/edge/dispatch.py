"""Calls MLflow's Flask app in-process for one project and streams its answer back.

The environ MLflow sees is built here and nowhere else (compare werkzeug's ProxyFix and
DispatcherMiddleware). Keys changed:

- SCRIPT_NAME: `/mlflow/<project path>/tracking`, so MLflow's UI and redirects stay under it.
- PATH_INFO: the rest of the path; QUERY_STRING: as rewritten (rewrite.py). Both paths are
  handed over in WSGI's form (PEP 3333: the URL's bytes read as latin-1), not as the text
  Django decoded: werkzeug decodes them again, and `日本.txt` or `é.txt` must stay themselves.
- wsgi.input, CONTENT_LENGTH: a rewritten JSON body when there is one; otherwise the
  client's stream, unread, so artifact uploads stream through in constant memory (read
  through gunicorn's own reader when it is gunicorn's, see `_DirectInput`). A stream whose
  framing breaks while MLflow reads it is the client's error: 400, whatever MLflow answered.
- Headers a route names ids in (routes.Route.headers, e.g. OTLP's HTTP_X_MLFLOW_EXPERIMENT_ID):
  as rewritten and checked (experiment "0" is the project's Default).
- HTTP_X_MLFLOW_WORKSPACE: always the project's workspace. The client's copy (any case, any
  count: WSGI folds them into this one key) is discarded, and the workspace is also bound
  in-process, so MLflow neither trusts nor looks up the header.

Dropped because MLflow must not act on them: the client's credentials (HTTP_AUTHORIZATION,
HTTP_PRIVATE_TOKEN, HTTP_JOB_TOKEN, HTTP_COOKIE), forwarding headers (HTTP_FORWARDED,
HTTP_X_FORWARDED_*, whose trust is Django's business) and hop-by-hop headers. Nothing else
is read from the client.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator

from django.http import JsonResponse, StreamingHttpResponse
from gunicorn.http.errors import ParseException

from mlflow_bridge.edge.errors import BridgeError, database_unavailable, error_response
from mlflow_bridge.embedded.mlflow_app import flask_app, in_workspace

DROPPED_ENVIRON_KEYS = frozenset(
    {
        "HTTP_AUTHORIZATION",
        "HTTP_PRIVATE_TOKEN",
        "HTTP_JOB_TOKEN",
        "HTTP_COOKIE",
        "HTTP_FORWARDED",
        "HTTP_CONNECTION",
        "HTTP_KEEP_ALIVE",
        "HTTP_PROXY_AUTHORIZATION",
        "HTTP_TE",
        "HTTP_TRAILER",
        "HTTP_UPGRADE",
    }
)
HOP_BY_HOP_RESPONSE_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
WORKSPACE_ENVIRON_KEY = "HTTP_X_MLFLOW_WORKSPACE"
logger = logging.getLogger(__name__)


def mlflow_environ(
    client_environ: dict,
    *,
    script_name: str,
    path_info: str,
    query_string: str,
    workspace: str,
    body: bytes | None,
    headers: dict[str, str] | None = None,
) -> dict:
    """The environ for MLflow's app: see the module docstring for each key."""
    environ = {
        key: value
        for key, value in client_environ.items()
        if key not in DROPPED_ENVIRON_KEYS and not key.startswith("HTTP_X_FORWARDED_")
    }
    environ.update(
        {
            "SCRIPT_NAME": wsgi_path(script_name),
            "PATH_INFO": wsgi_path(path_info),
            "QUERY_STRING": query_string,
            **(headers or {}),
            WORKSPACE_ENVIRON_KEY: workspace,
        }
    )
    if body is not None:
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
    else:
        environ["wsgi.input"] = _DirectInput.around(environ["wsgi.input"])
    return environ


def wsgi_path(path: str) -> str:
    """A decoded URL path in WSGI's form: its UTF-8 bytes as latin-1 characters (PEP 3333)."""
    return path.encode("utf-8").decode("latin-1")


# What gunicorn raises when a body's framing is broken: bad chunk sizes, missing CRLFs, a body
# cut short (IOErrors), and malformed trailers (its ParseException).
BODY_READ_ERRORS = (OSError, ParseException)


def unreadable_body(exc: Exception) -> BridgeError:
    """A body whose framing is broken (gunicorn: bad chunk size, missing CRLF, cut short)."""
    return BridgeError(
        "MALFORMED_REQUEST",
        f"The request body could not be read ({type(exc).__name__}): check its "
        "Content-Length or chunked framing.",
    )


class _DirectInput:
    """The unread client body MLflow streams from, remembering whether reading it failed.

    A gunicorn body is read through its length- or chunk-aware reader: gunicorn's
    `Body.read(n)` rebuilds its buffer 1 KiB at a time, and streaming a 200 MB artifact spent
    most of a worker's time there (bench/RESULTS.md). Its `reader` gives the same bytes,
    honouring Content-Length and chunked encoding, in the socket's own chunk sizes.
    """

    def __init__(self, body, reader=None):
        self._body = body
        self._reader = reader
        self.failure: Exception | None = None

    @classmethod
    def around(cls, stream):
        reader = getattr(stream, "reader", None)
        buffer = getattr(stream, "buf", None)
        if reader is None or buffer is None or buffer.tell():
            return cls(stream)  # Not gunicorn's Body, or already partly read: read it as it is.
        return cls(stream, reader)

    def _failing(self, read, *args):
        try:
            return read(*args)
        except BODY_READ_ERRORS as exc:
            self.failure = exc
            raise

    def read(self, size: int | None = -1) -> bytes:
        if self._reader is None or size is None or size < 0 or self._body.buf.tell():
            # Whole body, or after a readline left bytes buffered.
            return self._failing(self._body.read, size)
        return self._failing(self._reader.read, size)

    def readline(self, size: int | None = None) -> bytes:
        return self._failing(self._body.readline, size)

    def __iter__(self):
        while line := self.readline():
            yield line


class _InWorkspace:
    """Iterates MLflow's response with the project's workspace bound, then closes it."""

    def __init__(self, iterable: Iterable[bytes], workspace: str):
        self._iterable = iterable
        self._workspace = workspace

    def __iter__(self) -> Iterator[bytes]:
        iterator = iter(self._iterable)
        while True:
            with in_workspace(self._workspace):
                chunk = next(iterator, None)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        close = getattr(self._iterable, "close", None)
        if close is not None:
            with in_workspace(self._workspace):
                close()


def _is_json(headers: list[tuple[str, str]]) -> bool:
    return any(
        name.lower() == "content-type" and "json" in value.lower() for name, value in headers
    )


def _close(body: Iterable[bytes]) -> None:
    if close := getattr(body, "close", None):
        close()


# How SQLAlchemy quotes a statement in its errors. MLflow answers a database error but an
# OperationalError as a 400 carrying that text (mlflow/store/db/utils.py), and some refusals
# quote it after their own words: "Registered Model (name=m) already exists. Error: (...)".
SQL_SIGNATURES = ("[SQL: ", "sqlalche.me/e/")
SQLALCHEMY_TEXT = re.compile(r"\s*(?:Error:\s*)?\([\w.]+\).*", re.DOTALL)


def _read_whole(body: Iterable[bytes]) -> bytes:
    """An error MLflow answered (short JSON), read whole and closed."""
    try:
        return b"".join(body)
    finally:
        _close(body)


def _error_in(text: str) -> dict:
    """MLflow's `{"error_code", "message"}`, or {} when the text is not one."""
    with contextlib.suppress(ValueError):
        if isinstance(error := json.loads(text), dict):
            return error
    return {}


def _refusal_without_sql(body: Iterable[bytes]) -> list[bytes] | JsonResponse:
    """MLflow's 400, read whole, or the same refusal (its error code: a client may act on
    RESOURCE_ALREADY_EXISTS) without the SQL it quotes; the log keeps it."""
    content = _read_whole(body)
    text = content.decode("utf-8", "replace")
    if not any(signature in text for signature in SQL_SIGNATURES):
        return [content]
    logger.warning("MLflow's database refused a request: %s", text[:2000])
    refusal = _error_in(text)
    words = SQLALCHEMY_TEXT.sub("", str(refusal.get("message", ""))).strip()
    words = words or "MLflow's database refused this request: check the values sent."
    message = f"{words} (the database's own words are in the service's log)"
    error_code = str(refusal.get("error_code") or "BAD_REQUEST")
    return error_response(BridgeError(error_code, message, status=400))


def _failure(status: int, headers: list[tuple[str, str]], body: Iterable[bytes]) -> JsonResponse:
    """MLflow's 5xx without its message, which may quote SQL or a storage path (the log keeps
    it). Flask's HTML page for an exception MLflow did not handle becomes JSON, too; Flask has
    logged the traceback. 501 (a feature this store lacks) keeps its message."""
    text = _read_whole(body).decode("utf-8", "replace")
    if not _is_json(headers):
        text = ""  # Flask's HTML page for an exception: Flask has logged the traceback.
    if text:
        logger.warning("MLflow answered %s: %s", status, text[:2000])
    error_code = str(_error_in(text).get("error_code") or "INTERNAL_ERROR")
    if error_code == "TEMPORARILY_UNAVAILABLE":
        # MLflow's name for its database failing (mlflow/store/db/utils.py): as retryable as
        # the same failure in Django's database.
        return error_response(database_unavailable())
    message = "MLflow failed on this request; the details are in the service's log."
    return error_response(BridgeError(error_code, message, status=status))


def call_mlflow(environ: dict, workspace: str) -> StreamingHttpResponse | JsonResponse:
    """Run MLflow's WSGI app for one request and stream its response back through Django."""
    started: dict = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
        started["status"] = status
        started["headers"] = headers
        return lambda data: None  # MLflow (Flask) never uses the legacy write() callable.

    with in_workspace(workspace):
        body = flask_app().wsgi_app(environ, start_response)
    if failure := getattr(environ["wsgi.input"], "failure", None):
        # MLflow failed reading the client's stream: the client's error, and nothing stored
        # (MLflow stores an upload only once it has read all of it).
        _close(body)
        raise unreadable_body(failure)
    code, _, reason = started["status"].partition(" ")
    if int(code) >= 500 and int(code) != 501:
        return _failure(int(code), started["headers"], body)
    if int(code) == 400 and _is_json(started["headers"]):
        body = _refusal_without_sql(body)
        if isinstance(body, JsonResponse):
            return body
    response = StreamingHttpResponse(_InWorkspace(body, workspace), status=int(code), reason=reason)
    del response["Content-Type"]
    for name, value in started["headers"]:
        if name.lower() not in HOP_BY_HOP_RESPONSE_HEADERS:
            response[name] = value
    return response
