"""The service in-process: the tracking view through Django's test client (`Tracking`), and the
whole site through `requests` (`Site`), for tests written as a live server's clients."""

from __future__ import annotations

import functools
import http.client
import io
import itertools
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from urllib.parse import unquote_to_bytes, urlsplit

import requests
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import Client
from django.test.client import ClientHandler
from mlflow.utils import request_utils

from tests.api import Api
from tests.gitlab_double import GitLabDouble


class Tracking:
    def __init__(self, client: Client, path: str, token: str):
        self.client = client
        self.prefix = f"/mlflow/{path}/tracking/"
        self.auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def call(self, method: str, route: str, body: dict | None = None, **params) -> tuple[int, dict]:
        """(status, JSON body) of one MLflow REST call, `route` below `api/2.0/mlflow/`."""
        url = self.prefix + "api/2.0/mlflow/" + route
        if method == "GET":
            response = self.client.get(url, params, **self.auth)
        else:
            data = json.dumps(body or {})
            response = self.client.generic(
                method, url, data, content_type="application/json", **self.auth
            )
        content = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, json.loads(content) if content else {}

    def get(self, route: str, **params) -> tuple[int, dict]:
        return self.call("GET", route, **params)

    def post(self, route: str, body: dict | None = None) -> tuple[int, dict]:
        return self.call("POST", route, body)

    def artifact(self, method: str, path: str, data: bytes = b"", **extra) -> tuple[int, bytes]:
        """(status, body) of a proxied artifact call on `<experiment>/<run>/artifacts/...`."""
        url = self.prefix + "api/2.0/mlflow-artifacts/artifacts/" + path
        response = self.client.generic(method, url, data, content_type="application/octet-stream",
                                       **self.auth, **extra)  # fmt: skip
        content = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, content

    def new_run(self, experiment: str) -> tuple[str, str]:
        """(experiment id, run id) of a new run in a new experiment."""
        experiment_id = self.post("experiments/create", {"name": experiment})[1]["experiment_id"]
        run = self.post("runs/create", {"experiment_id": experiment_id})[1]["run"]["info"]
        return experiment_id, run["run_id"]


# --- The same site over `requests`: live tests' clients, served in-process ------------------
# A requests.Session with `WsgiAdapter` mounted sends its requests to Django in this process
# instead of a socket: tests written against a live server (tests/api.py, tests/sessions.py)
# run unchanged, cookies, redirects and headers included, with the test's database transaction.

SITE_URL = "http://testserver"


_members = itertools.count()


def new_member(client: Client, gitlab: GitLabDouble, level: int, who: str, group: str) -> Tracking:
    """A new GitLab user `<who><n>` holding `level` in a new project `<group>/p<n>`, as a client
    of the tracking view; `.username` is the user's, `.workspace` the project's."""
    n = next(_members)
    user = gitlab.add_user(f"{who}{n}")
    project = gitlab.add_project(f"{group}/p{n}")
    project.direct[user.id] = level
    tracking = Tracking(client, project.path, user.token)
    tracking.username, tracking.workspace = user.username, f"p-{project.id}"
    return tracking


class _RawAnswer:
    """What requests reads cookies from (`_original_response.msg`) and closes afterwards."""

    def __init__(self, headers: list[tuple[str, str]]):
        message = http.client.HTTPMessage()
        for name, value in headers:
            message[name] = value  # appends: Set-Cookie may repeat
        self._original_response = SimpleNamespace(msg=message)

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class WsgiAdapter(requests.adapters.BaseAdapter):
    """Serves requests through Django's request handler, CSRF checks enforced as in production
    (Django's test Client switches them off). Bodies are sent whole: chunked transfer, slow
    clients and gunicorn's own refusals need a live server (tests/live.py)."""

    handler: ClientHandler | None = None  # one for all: it loads the middleware once

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:
        if WsgiAdapter.handler is None:
            WsgiAdapter.handler = ClientHandler(enforce_csrf_checks=True)
        with _connection_kept():
            answer = WsgiAdapter.handler(_environ(request))
            content = b"".join(answer.streaming_content) if answer.streaming else answer.content
        headers = [*answer.items()]
        headers += [("Set-Cookie", c.output(header="").strip()) for c in answer.cookies.values()]
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.reason_phrase
        for name, value in headers:
            if name in response.headers and name.lower() != "set-cookie":
                value = f"{response.headers[name]}, {value}"
            response.headers[name] = value
        response._content, response._content_consumed = content, True
        response.raw = _RawAnswer(headers)
        response.url, response.request, response.connection = request.url, request, self
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        requests.cookies.extract_cookies_to_jar(response.cookies, request, response.raw)
        return response

    def close(self) -> None:
        pass


@contextmanager
def _connection_kept() -> Iterator[None]:
    """Keep the test's database connection (and its transaction) open through the request: a
    response closed inside a view (mlflow_bridge/edge/browser.py's with_banner) sends
    request_finished, whose close_old_connections would end the test's transaction on
    PostgreSQL. Django's test Client does the same around its own requests."""
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_finished.connect(close_old_connections)


def _environ(request: requests.PreparedRequest) -> dict:
    """The WSGI environ gunicorn would build for `request` (RAW_URI included)."""
    url = urlsplit(request.url)
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes):  # a generator or a file: sent whole here
        body = b"".join(part.encode() if isinstance(part, str) else part for part in body)
    environ = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(url.path).decode("iso-8859-1"),
        "RAW_URI": request.path_url,
        "QUERY_STRING": url.query,
        "SERVER_NAME": url.hostname,
        "SERVER_PORT": str(url.port or 80),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": url.netloc,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in request.headers.items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ[f"HTTP_{key}"] = value
    return environ


def raw_call(method: str, raw_path: str, headers: dict[str, str], body: bytes = b"") -> tuple:
    """(status, body) of a request whose path is sent exactly as written, dot segments and
    escapes included (requests would normalise it), as http.client sends it to a live server."""
    request = requests.PreparedRequest()
    request.method, request.url, request.body = method, SITE_URL + raw_path, body or None
    request.headers = requests.structures.CaseInsensitiveDict(headers)
    if body:
        request.headers["Content-Length"] = str(len(body))
    response = WsgiAdapter().send(request)
    return response.status_code, response.content


class Site:
    """The service in-process, shaped like a live server (tests/live.py's LiveServer)."""

    url = SITE_URL

    def tracking_uri(self, path: str) -> str:
        return f"{self.url}/mlflow/{path}/tracking/"

    def session(self) -> requests.Session:
        """A requests.Session whose calls to this site are served in-process."""
        session = requests.Session()
        session.mount(f"{self.url}/", WsgiAdapter())
        return session

    def serve_every_session(self, monkeypatch) -> None:
        """Until the test ends, every requests.Session (requests.get too) sends its calls to
        this site in-process; other URLs (the GitLab double's) still go over the network."""
        opened = requests.Session.__init__

        def init(session: requests.Session) -> None:
            opened(session)
            session.mount(f"{self.url}/", WsgiAdapter())

        monkeypatch.setattr(requests.Session, "__init__", init)
        # The stock client keeps one session per process (an lru_cache in MLflow's
        # request_utils): for this test, a cache of its own, so that its sessions are opened
        # here, with the adapter, and none of them outlives the test. Else the session a
        # live test opened first would send this test's calls to http://testserver over the
        # network, which the client retries for minutes.
        mlflow_session_cache = request_utils._cached_get_request_session
        maxsize = mlflow_session_cache.cache_parameters()["maxsize"]
        monkeypatch.setattr(
            request_utils,
            "_cached_get_request_session",
            functools.lru_cache(maxsize=maxsize)(mlflow_session_cache.__wrapped__),
        )

    def api(self, path: str, token: str | None) -> Api:
        """tests/api.py's client of project `path`, in-process."""
        return Api(self.tracking_uri(path), token, session=self.session())


def site_settings(gitlab: GitLabDouble) -> dict[str, object]:
    """The settings a live test server gets from tests/live.py, for the service in-process."""
    return {
        "GITLAB_URL": gitlab.url,
        "SOCIAL_AUTH_GITLAB_API_URL": gitlab.url,
        "MEMBERSHIP_CACHE_TTL": 60,
        "GITLAB_OAUTH_CLIENT_ID": gitlab.oauth.client_id,
        "SOCIAL_AUTH_GITLAB_KEY": gitlab.oauth.client_id,
        "GITLAB_OAUTH_CLIENT_SECRET": gitlab.oauth.client_secret,
        "SOCIAL_AUTH_GITLAB_SECRET": gitlab.oauth.client_secret,
    }
