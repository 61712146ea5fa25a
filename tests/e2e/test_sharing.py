"""Sharing, live: pages of other origins framing the service, in Chromium: SharingHub's "Model
experiments" tab (a project's MLflow UI, drawn for an allowed origin, refused for another) and a
notebook's trace (MLflow's own display-handler HTML: spans for a signed-in browser, the sign-in
message for a signed-out one); the notebook test runs against a bare `mlflow server` too, to
prove the test. SharingHub's session cookie signs a browser in (a SharingHub double). And a
public project read by anyone: the stock client without a token reads
and cannot write, an anonymous browser browses the UI under a bar saying it is public.

The framing pages are served from other ports of 127.0.0.1: other origins of the same site, as
SharingHub or a JupyterHub beside the service. Screenshots land in /work/screens/issue-20/ when
that directory's parent exists, else in test-output/framing/.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import threading
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests import warm_processes
from tests.e2e.test_browser import log_in_with_gitlab
from tests.live import free_port, start_live_server, stop, wait_until

# Chromium's behaviour; the requests behind these pages are specified on both databases
# in-process (pyproject.toml's markers).
pytestmark = pytest.mark.any_database

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

ROOT = Path(__file__).resolve().parents[2]
SHOTS = (Path("/work/screens/issue-20") if Path("/work/screens").is_dir()
         else ROOT / "test-output" / "framing")  # fmt: skip
MLFLOW = Path(sys.executable).with_name("mlflow")
# What a notebook cell runs: two nested spans, then MLflow's display handler's HTML for the trace.
NOTEBOOK_CELL = """
import mlflow
from mlflow.tracing.display.display_handler import get_notebook_iframe_html

mlflow.set_experiment("notebook")

@mlflow.trace(name="tokenize")
def tokenize(text):
    return text.split()

@mlflow.trace(name="predict")
def predict(text):
    return len(tokenize(text))

predict("the quick brown fox")
mlflow.flush_trace_async_logging()
trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
print(get_notebook_iframe_html([trace]))
"""


class StaticSite:
    """Another origin of the same site: 127.0.0.1 on a port of its own, serving `root`."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"

    def page(self, name: str, body: str) -> str:
        (self.root / name).write_text(f"<!doctype html><html><body>{body}</body></html>")
        return f"{self.origin}/{name}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def notebook_html(tracking_uri: str, token: str | None) -> str:
    """The HTML a notebook shows for a trace logged to `tracking_uri` (as MLflow emits it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    done = warm_processes.run_python(["-c", NOTEBOOK_CELL], env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    html = done.stdout[done.stdout.index("<div") :]
    assert 'id="trace-renderer"' in html
    return html


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"))


@pytest.fixture(scope="module")
def sharinghub(tmp_path_factory) -> StaticSite:
    """The allowed origin (FRAME_ANCESTORS): SharingHub's or a JupyterHub's pages."""
    site = StaticSite(tmp_path_factory.mktemp("sharinghub"))
    yield site
    site.stop()


@pytest.fixture(scope="module")
def stranger(tmp_path_factory) -> StaticSite:
    """Another origin of the same site that the service does not list."""
    site = StaticSite(tmp_path_factory.mktemp("stranger"))
    yield site
    site.stop()


class SharingHubDouble:
    """sharinghub-server's GET /api/auth/info: the GitLab token of a signed-in session cookie."""

    def __init__(self):
        self.sessions: dict[str, str] = {}
        self.calls = 0
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                double.calls += 1
                cookie = SimpleCookie(self.headers.get("Cookie", "")).get("sharinghub-session")
                token = double.sessions.get(cookie.value if cookie else "")
                status, body = (200, {"access_token": token}) if token else (401, {"detail": "no"})
                payload = json.dumps(body).encode()
                self.send_response(status if self.path == "/api/auth/info" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def hub():
    double = SharingHubDouble()
    yield double
    double.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, gitlab, sharinghub, hub):
    root = gitlab.add_user("root", admin=True)  # the service token: anonymous reads
    server, process = start_live_server(
        tmp_path_factory.mktemp("framed"), gitlab.url, workers=1,
        FRAME_ANCESTORS=sharinghub.origin, GITLAB_SERVICE_TOKEN=root.token,
        SHARINGHUB_URL=hub.url, **gitlab.oauth.settings,
    )  # fmt: skip
    yield server
    stop(process)


@pytest.fixture(scope="module")
def notebook(gitlab, cast):
    """ml/team/notebook: Dave is a Developer; private."""
    project = gitlab.add_project("ml/team/notebook")
    project.direct[cast.dave.id] = 30
    return project


def sign_in(page, server, gitlab, user, project) -> None:
    page.goto(server.tracking_uri(project.path))
    log_in_with_gitlab(page, gitlab, user)
    expect(page.locator("#sharinghub-banner")).to_contain_text(project.path)


def ui_frame_page(site: StaticSite, server, project) -> str:
    return site.page("experiments.html", "<h1>Model experiments</h1>"
                     f'<iframe id="mlflow" src="{server.tracking_uri(project.path)}" '
                     'style="width:1350px;height:700px"></iframe>')  # fmt: skip


class TestModelExperimentsTab:
    def test_it_is_drawn_in_a_frame_of_an_allowed_origin(
        self, page, server, gitlab, cast, notebook, sharinghub
    ):
        sign_in(page, server, gitlab, cast.dave, notebook)

        page.goto(ui_frame_page(sharinghub, server, notebook))

        framed = page.frame_locator("#mlflow")
        banner = framed.locator("#sharinghub-banner")
        expect(banner).to_contain_text(notebook.path)
        expect(framed.get_by_text("Experiments").first).to_be_visible()
        # Framed, the bar opens the page in a tab of its own and drops SharingHub's own links.
        expect(banner.get_by_role("link", name="Open in a new tab")).to_have_attribute(
            "target", "_blank"
        )
        expect(banner.get_by_role("link", name="All projects")).to_be_hidden()
        shot(page, "ui-framed-by-allowed-origin")

    def test_it_is_refused_by_the_browser_in_a_frame_of_another_origin(
        self, page, server, gitlab, cast, notebook, sharinghub, stranger
    ):
        sign_in(page, server, gitlab, cast.dave, notebook)

        with page.expect_console_message(lambda m: "frame-ancestors" in m.text) as report:
            page.goto(ui_frame_page(stranger, server, notebook))

        # Chromium's words: "Framing '<url>' violates the following Content Security Policy
        # directive: "frame-ancestors 'self' <allowed>". The request has been blocked."
        refusal = report.value.text
        assert "has been blocked" in refusal
        assert f"frame-ancestors 'self' {sharinghub.origin}" in refusal
        expect(page.frame_locator("#mlflow").locator("#sharinghub-banner")).to_have_count(0)
        shot(page, "ui-refused-to-other-origin")


class TestNotebookTrace:
    @pytest.fixture(scope="class")
    def trace_page(self, server, cast, notebook, sharinghub) -> str:
        html = notebook_html(server.tracking_uri(notebook.path), cast.dave.token)
        return sharinghub.page("notebook.html", f"<h1>In [1]: predict(...)</h1>{html}")

    def test_it_shows_the_spans_to_a_signed_in_browser(
        self, page, server, gitlab, cast, notebook, trace_page
    ):
        sign_in(page, server, gitlab, cast.dave, notebook)

        page.goto(trace_page)

        framed = page.frame_locator("#trace-renderer")
        expect(framed.get_by_text("predict").first).to_be_visible()
        expect(framed.get_by_text("tokenize").first).to_be_visible()
        expect(framed.get_by_text("the quick brown fox").first).to_be_visible()  # its input
        shot(page, "notebook-trace-signed-in")

    def test_it_asks_a_signed_out_browser_to_sign_in_in_a_new_tab(self, page, notebook, trace_page):
        page.goto(trace_page)

        framed = page.frame_locator("#trace-renderer")
        expect(framed.get_by_role("heading", name="Sign in to view this trace")).to_be_visible()
        link = framed.get_by_role("link", name="Sign in to SharingHub MLflow")
        expect(link).to_have_attribute("target", "_blank")
        expect(link).to_have_attribute("href", re.compile(rf"/mlflow/{notebook.path}/tracking/$"))
        expect(framed.get_by_text("predict")).to_have_count(0)
        shot(page, "notebook-trace-signed-out")


class TestNotebookTraceOnABareServer:
    """The same notebook test against a bare `mlflow server`: it proves the test."""

    @pytest.fixture(scope="class")
    def bare(self, tmp_path_factory) -> str:
        data = tmp_path_factory.mktemp("bare-mlflow")
        port = free_port()
        process = subprocess.Popen(
            [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{data / 'mlflow.db'}",
             "--artifacts-destination", str(data / "artifacts")],
            # Without MLflow's job runner: seven huey consumers, each importing MLflow, for no job.
            env={**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
                 "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=(data / "server.log").open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            assert process.poll() is None, (data / "server.log").read_text()[-3000:]
            try:
                return requests.get(f"{url}/health", timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(answers, "the bare MLflow server", limit=120)
        yield url
        stop(process)

    def test_it_shows_the_spans(self, page, bare, sharinghub):
        html = notebook_html(bare, None)
        trace_page = sharinghub.page("bare-notebook.html", f"<h1>In [1]: bare server</h1>{html}")

        page.goto(trace_page)

        framed = page.frame_locator("#trace-renderer")
        expect(framed.get_by_text("predict").first).to_be_visible()
        expect(framed.get_by_text("tokenize").first).to_be_visible()
        shot(page, "notebook-trace-bare-mlflow")


class TestPublicProject:
    @pytest.fixture(scope="class")
    def showcase(self, gitlab, cast):
        """ml/team/showcase: public, Dave a Developer."""
        project = gitlab.add_project("ml/team/showcase", visibility="public")
        project.direct[cast.dave.id] = 30
        return project

    def test_it_lets_the_stock_client_read_without_a_token_and_not_write(
        self, server, cast, showcase, monkeypatch
    ):
        uri = server.tracking_uri(showcase.path)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a failure fails at once
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", cast.dave.token)
        MlflowClient(uri).create_experiment("shared-model")
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")

        anonymous = MlflowClient(uri)
        names = {experiment.name for experiment in anonymous.search_experiments()}

        assert "shared-model" in names
        with pytest.raises(MlflowException, match="(?i)authentication required"):
            anonymous.create_experiment("planted")
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", cast.dave.token)
        assert "planted" not in {e.name for e in MlflowClient(uri).search_experiments()}

    def test_it_shows_an_anonymous_browser_the_ui_read_only_with_a_sign_in_link(
        self, page, server, showcase
    ):
        page.goto(server.tracking_uri(showcase.path))

        banner = page.locator("#sharinghub-banner")
        expect(banner).to_contain_text("This project is public: you can browse it")
        expect(banner.get_by_role("link", name="Sign in")).to_have_attribute(
            "href", re.compile(r"^/mlflow/login/\?next=")
        )
        expect(page.get_by_role("link", name="shared-model", exact=True)).to_be_visible()
        shot(page, "public-project-anonymous")


class TestSharingHubSession:
    """Dave is signed in to SharingHub: his browser holds its session cookie."""

    @pytest.fixture(scope="class")
    def cookie(self, hub, cast) -> str:
        hub.sessions["dave-hub-session"] = cast.dave.token
        return "dave-hub-session"

    def test_it_signs_the_browser_in_without_a_second_login(self, page, server, notebook, cookie):
        page.context.add_cookies([{"name": "sharinghub-session", "value": cookie,
                                   "url": server.url}])  # fmt: skip

        page.goto(server.tracking_uri(notebook.path))

        banner = page.locator("#sharinghub-banner")
        expect(banner).to_contain_text(notebook.path)
        expect(banner).to_contain_text("Developer")
        expect(banner.get_by_role("link", name="Open in a new tab")).to_be_hidden()
        shot(page, "sharinghub-session-signed-in")

    def test_it_asks_sharinghub_at_most_twice_for_twenty_requests(
        self, server, hub, notebook, cookie
    ):
        hub.sessions["dave-hub-session-2"] = hub.sessions[cookie]  # a session not seen yet
        session = requests.Session()
        session.cookies.set("sharinghub-session", "dave-hub-session-2")
        calls = hub.calls
        search = server.tracking_uri(notebook.path) + "ajax-api/2.0/mlflow/experiments/search"

        statuses = {session.get(search, params={"max_results": 5}, timeout=30).status_code
                    for _ in range(20)}  # fmt: skip

        assert statuses == {200}
        assert hub.calls - calls <= 2

    def test_it_refuses_a_forged_cookie(self, server, notebook):
        search = server.tracking_uri(notebook.path) + "ajax-api/2.0/mlflow/experiments/search"

        response = requests.get(search, cookies={"sharinghub-session": "forged"}, timeout=30)

        assert response.status_code == 401
        assert response.json()["error_code"] == "UNAUTHENTICATED"

    def test_it_refuses_a_write_from_a_foreign_origin(self, server, notebook, cookie, cast):
        uri = server.tracking_uri(notebook.path)

        response = requests.post(uri + "ajax-api/2.0/mlflow/experiments/create",
                                 json={"name": "planted"}, timeout=30,
                                 cookies={"sharinghub-session": cookie},
                                 headers={"Origin": "https://evil.example"})  # fmt: skip

        assert response.status_code == 403
        found = requests.get(uri + "api/2.0/mlflow/experiments/get-by-name", timeout=30,
                             params={"experiment_name": "planted"},
                             headers={"Authorization": f"Bearer {cast.dave.token}"})  # fmt: skip
        assert found.status_code == 404
