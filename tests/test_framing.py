"""Who may frame which page (sharinghub_mlflow/framing.py), and MLflow's notebook trace renderer
under a project (mlflow_bridge/edge/notebook.py), in-process; GitLab answered by `responses`.

Dave is a Developer of ml/team/proj; Charlie is no member. The browser tests of the same rules
are in tests/e2e/test_sharing.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import responses
from django.core.cache import cache

from projects import checks
from tests.inprocess import Tracking
from tests.sessions import logged_in_client

BASE = "https://gitlab.example.com"
PATH = "ml/team/proj"
SHARINGHUB = "https://sharinghub.example.com"
RENDERER = f"/mlflow/{PATH}/tracking/static-files/lib/notebook-trace-renderer/index.html"
# What MLflow's display handler puts in the frame's URL, for a trace of no project of Dave's.
ELSEWHERE = "?trace_id=tr-elsewhere&experiment_id=1&version=3.17.2"
SETTINGS_TRIED = ("SHARINGHUB_URL", "FRAME_ANCESTORS", "COOKIE_SAMESITE")
IFRAME = {"HTTP_ACCEPT": "text/html", "HTTP_SEC_FETCH_DEST": "iframe"}

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def gitlab_api(settings):
    """GitLab knows Dave (Developer of ml/team/proj) and Charlie (no member) by OAuth token."""
    settings.GITLAB_URL = BASE
    settings.FRAME_ANCESTORS = [SHARINGHUB]
    cache.clear()
    users = {"oauth-dave": (7, "dave", 30), "glpat-dave": (7, "dave", 30),
             "oauth-charlie": (9, "charlie", 0)}  # fmt: skip

    def as_gitlab(request) -> tuple[int, dict, str]:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        user_id, username, level = users[token]
        if request.path_url.endswith("/user"):
            return 200, {}, json.dumps({"id": user_id, "username": username})
        if not level:
            return 404, {}, json.dumps({"message": "404 Project Not Found"})
        return 200, {}, json.dumps({"id": 4242, "path_with_namespace": PATH, "permissions": {
            "project_access": {"access_level": level}, "group_access": None}})  # fmt: skip

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for path in ("user", "projects/ml%2Fteam%2Fproj"):
            mock.add_callback(responses.GET, f"{BASE}/api/v4/{path}", callback=as_gitlab)
        yield mock


@pytest.fixture
def trace_query(client) -> str:
    """The frame's query for a trace Dave started in ml/team/proj's first experiment."""
    tracking = Tracking(client, PATH, "glpat-dave")
    experiment_id, _ = tracking.new_run(f"notebook-{uuid.uuid4().hex[:8]}")
    body = {"experiment_id": experiment_id, "timestamp_ms": 1, "request_metadata": [], "tags": []}
    status, started = tracking.post("traces", body)
    assert status == 200, started
    trace_id = started["trace_info"]["request_id"]
    return f"?trace_id={trace_id}&experiment_id={experiment_id}&version=3.17.2"


def page_of(response) -> str:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return content.decode()


class TestFramingPolicy:
    @pytest.mark.parametrize(
        "url",
        [
            pytest.param("/mlflow/", id="portal"),
            pytest.param("/mlflow/login/", id="login"),
            pytest.param(f"/mlflow/{PATH}/connect/", id="connect"),
            pytest.param(f"/mlflow/{PATH}/tracking/", id="mlflow-ui"),
            pytest.param(
                f"/mlflow/{PATH}/tracking/ajax-api/2.0/mlflow/experiments/search",
                id="mlflow-ui-call",
            ),  # fmt: skip
            pytest.param("/mlflow/no/such/page/", id="not-found"),
        ],
    )
    def test_it_lets_the_site_and_the_allowed_origins_frame_its_pages(self, client, url):
        response = client.get(url, HTTP_ACCEPT="text/html")

        assert response["Content-Security-Policy"] == f"frame-ancestors 'self' {SHARINGHUB}"
        assert "X-Frame-Options" not in response

    def test_it_lets_the_site_alone_frame_its_pages_when_no_origin_is_allowed(
        self, client, settings
    ):
        settings.FRAME_ANCESTORS = []

        response = client.get("/mlflow/login/")

        assert response["Content-Security-Policy"] == "frame-ancestors 'self'"

    def test_it_lets_nobody_frame_the_admin(self, client):
        response = client.get("/admin/login/")

        assert response["Content-Security-Policy"] == "frame-ancestors 'none'"
        assert response["X-Frame-Options"] == "DENY"

    @pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "signed-out"])
    def test_it_lets_any_origin_frame_the_notebook_trace_renderer(self, client, signed_in):
        if signed_in:
            logged_in_client(client)

        response = client.get(RENDERER + ELSEWHERE, **IFRAME)

        # As MLflow: no header at all, so that notebooks in any scheme (vscode-webview:) draw it.
        assert "Content-Security-Policy" not in response
        assert "X-Frame-Options" not in response


class TestAllowedOriginsSetting:
    def settings_of(
        self, script: str = "print(settings.FRAME_ANCESTORS)", **env: str
    ) -> subprocess.CompletedProcess:
        """What `script` prints about the settings loaded in a fresh interpreter with `env`."""
        script = f"from django.conf import settings; {script}"
        environ = {k: v for k, v in os.environ.items() if k not in SETTINGS_TRIED}
        done = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {script}"],
            env={**environ, "DJANGO_SETTINGS_MODULE": "sharinghub_mlflow.settings", **env},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return done

    def test_it_allows_sharinghubs_origin_by_default(self):
        done = self.settings_of(SHARINGHUB_URL="https://hub.example.com/sharinghub/")

        assert done.stdout.strip() == "['https://hub.example.com']"

    def test_it_allows_only_the_site_itself_without_sharinghub(self):
        assert self.settings_of().stdout.strip() == "[]"

    def test_it_refuses_an_entry_that_is_not_an_origin(self):
        done = self.settings_of(FRAME_ANCESTORS="https://ok.example.com,https://x.example.com;a")

        assert done.returncode != 0
        assert "FRAME_ANCESTORS" in done.stderr and "https://x.example.com;a" in done.stderr


class TestCookiesInOtherSitesFrames:
    def settings_of(self, **env: str) -> subprocess.CompletedProcess:
        return TestAllowedOriginsSetting.settings_of(
            self, script="print(settings.SESSION_COOKIE_SAMESITE, settings.CSRF_COOKIE_SAMESITE)",
            **env,
        )  # fmt: skip

    def test_it_keeps_lax_cookies_by_default(self):
        assert self.settings_of().stdout.split() == ["Lax", "Lax"]

    def test_it_sends_its_cookies_to_other_sites_frames_when_told(self):
        assert self.settings_of(COOKIE_SAMESITE="none").stdout.split() == ["None", "None"]

    def test_it_refuses_to_start_with_samesite_none_without_https(self, settings):
        settings.COOKIE_SAMESITE = "None"
        settings.SECURE_SSL = settings.TRUST_X_FORWARDED_PROTO = False

        assert [error.id for error in checks.check_cookie_samesite()] == ["projects.E002"]

    def test_it_accepts_samesite_none_over_https(self, settings):
        settings.COOKIE_SAMESITE, settings.SECURE_SSL = "None", True

        assert checks.check_cookie_samesite() == []


class TestNotebookTraceRenderer:
    def test_it_serves_mlflows_renderer_under_the_projects_prefix(self, client, trace_query):
        logged_in_client(client)

        response = client.get(RENDERER + trace_query, **IFRAME)

        page = page_of(response)
        assert response.status_code == 200
        # MLflow's page says <base href="/"> and /static-files/: a bare server's root.
        assert f'<base href="/mlflow/{PATH}/tracking/">' in page
        assert 'src="static-files/lib/notebook-trace-renderer/js/' in page
        assert 'src="/static-files/' not in page

    def test_it_shows_a_signed_out_visitor_how_to_sign_in_in_a_new_tab(self, client, trace_query):
        client.logout()

        response = client.get(RENDERER + trace_query, **IFRAME)

        page = page_of(response)
        assert response.status_code == 401
        assert "Sign in to view this trace" in page
        assert f'href="/mlflow/{PATH}/tracking/" target="_blank" rel="noopener"' in page
        assert "Location" not in response
        assert response["Cache-Control"] == "no-store"

    def test_it_shows_a_non_member_the_same_message_and_nothing_of_the_project(
        self, client, trace_query
    ):
        logged_in_client(client, gitlab_id=9, username="charlie", token="oauth-charlie")

        response = client.get(RENDERER + trace_query, **IFRAME)

        page = page_of(response)
        assert response.status_code == 404
        assert "Sign in to view this trace" in page
        assert "4242" not in page and "Developer" not in page

    def test_it_shows_the_message_for_a_trace_of_another_project(self, client):
        logged_in_client(client)

        response = client.get(RENDERER + ELSEWHERE, **IFRAME)

        assert response.status_code == 404
        assert "Sign in to view this trace" in page_of(response)

    def test_it_leaves_other_static_files_as_mlflow_serves_them(self, client):
        logged_in_client(client)

        response = client.get(f"/mlflow/{PATH}/tracking/static-files/favicon.ico")

        assert response.status_code == 200
        assert response["Content-Security-Policy"] == f"frame-ancestors 'self' {SHARINGHUB}"
