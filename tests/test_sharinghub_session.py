"""SharingHub mode, in-process: SharingHub's session cookie signs a browser in as the GitLab user
behind it (mlflow_bridge/edge/sharinghub_session.py). SharingHub and GitLab answered by `responses`.

Dave is signed in to SharingHub (his cookie "dave-session"); SharingHub knows no "forged"
cookie. Dave is a Developer of ml/team/proj.
"""

from __future__ import annotations

import json
import logging

import pytest
import responses
from django.core.cache import cache

from mlflow_bridge.edge import sharinghub_session

GITLAB = "https://gitlab.example.com"
SHARINGHUB = "https://sharinghub.example.com"
SITE = "http://testserver"
PATH = "ml/team/proj"
URI = f"/mlflow/{PATH}/tracking/"
SEARCH = URI + "ajax-api/2.0/mlflow/experiments/search?max_results=5"
CREATE = URI + "ajax-api/2.0/mlflow/experiments/create"
DAVE_TOKEN = "gitlab-oauth-of-dave"
SESSIONS = {"dave-session": DAVE_TOKEN}

pytestmark = pytest.mark.django_db


def as_sharinghub(request) -> tuple[int, dict, str]:
    cookie = request.headers.get("Cookie", "").partition("=")[2]  # one cookie: its value
    if cookie not in SESSIONS:
        return 401, {}, json.dumps({"detail": "Not authenticated"})
    return 200, {}, json.dumps({"access_token": SESSIONS[cookie]})


def as_gitlab(request) -> tuple[int, dict, str]:
    if request.headers.get("Authorization") != f"Bearer {DAVE_TOKEN}":
        return 401, {}, json.dumps({"message": "401 Unauthorized"})
    if request.path_url.endswith("/user"):
        return 200, {}, json.dumps({"id": 7, "username": "dave"})
    return 200, {}, json.dumps({"id": 4242, "path_with_namespace": PATH, "permissions": {
        "project_access": {"access_level": 30}, "group_access": None}})  # fmt: skip


@pytest.fixture(autouse=True)
def services(settings):
    settings.GITLAB_URL = GITLAB
    settings.SHARINGHUB_URL = SHARINGHUB
    cache.clear()
    sharinghub_session.forget_all()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, f"{SHARINGHUB}/api/auth/info", callback=as_sharinghub)
        for path in ("user", "projects/ml%2Fteam%2Fproj"):
            mock.add_callback(responses.GET, f"{GITLAB}/api/v4/{path}", callback=as_gitlab)
        yield mock


def info_calls(mock: responses.RequestsMock) -> int:
    return sum(1 for call in mock.calls if call.request.url.endswith("/api/auth/info"))


def with_cookie(client, value: str = "dave-session"):
    client.cookies["sharinghub-session"] = value
    return client


class TestSignIn:
    def test_it_signs_a_browser_in_by_its_sharinghub_session(self, client, services):
        response = with_cookie(client).get(SEARCH, HTTP_ACCEPT="application/json")

        assert response.status_code == 200, response.content

    def test_it_asks_sharinghub_once_for_twenty_requests(self, client, services):
        with_cookie(client)

        statuses = {client.get(SEARCH).status_code for _ in range(20)}

        assert statuses == {200}
        assert info_calls(services) == 1

    def test_it_refuses_a_forged_cookie_with_401_and_remembers_the_refusal(self, client, services):
        with_cookie(client, "forged")

        first, second = client.get(SEARCH), client.get(SEARCH)

        assert (first.status_code, second.status_code) == (401, 401)
        assert first.json()["error_code"] == "UNAUTHENTICATED"
        assert info_calls(services) == 1

    def test_it_sends_a_page_with_a_forged_cookie_to_the_login_page(self, client):
        response = with_cookie(client, "forged").get(URI, HTTP_ACCEPT="text/html")

        assert response.status_code == 302
        assert response["Location"].startswith("/mlflow/login/?next=")

    def test_it_ignores_the_cookie_without_sharinghub(self, client, services, settings):
        settings.SHARINGHUB_URL = ""

        response = with_cookie(client).get(SEARCH)

        assert response.status_code == 401
        assert info_calls(services) == 0

    def test_it_reads_the_cookie_named_by_the_setting(self, client, services, settings):
        settings.SHARINGHUB_SESSION_COOKIE = "hub"

        assert with_cookie(client).get(SEARCH).status_code == 401
        assert info_calls(services) == 0
        client.cookies["hub"] = "dave-session"
        assert client.get(SEARCH).status_code == 200

    def test_it_answers_503_when_sharinghub_cannot_answer(self, client, services):
        services.replace(responses.GET, f"{SHARINGHUB}/api/auth/info", status=502)

        response = with_cookie(client).get(SEARCH)

        assert response.status_code == 503
        assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"


class TestPages:
    def test_it_shows_the_portal_and_connect_page_to_a_sharinghub_session(self, client, services):
        services.add(responses.GET, f"{GITLAB}/api/v4/projects", json=[])

        assert with_cookie(client).get("/mlflow/").status_code == 200
        assert client.get(f"/mlflow/{PATH}/connect/").status_code == 200

    def test_it_logs_a_sharinghub_session_out_at_sharinghub(self, client):
        page = with_cookie(client).get(URI, HTTP_ACCEPT="text/html").content.decode()

        back = "https%3A%2F%2Fsharinghub.example.com%2F"
        assert f'href="{SHARINGHUB}/api/auth/logout?redirect_uri={back}">Log out</a>' in page
        assert 'action="/mlflow/logout/"' not in page  # this site's logout would change nothing


class TestSameOrigin:
    def test_it_lets_the_site_itself_write_with_the_cookie(self, client):
        response = with_cookie(client).post(CREATE, {"name": "from-sharinghub"},
                                            content_type="application/json",
                                            HTTP_ORIGIN=SITE)  # fmt: skip

        assert response.status_code == 200, response.content

    @pytest.mark.parametrize("origin", [SHARINGHUB, "https://evil.example", "null"])
    def test_it_refuses_a_write_from_another_origin(self, client, origin):
        response = with_cookie(client).post(CREATE, {"name": "planted"},
                                            content_type="application/json",
                                            HTTP_ORIGIN=origin)  # fmt: skip

        assert response.status_code == 403
        assert "Cross-site request refused" in response.json()["message"]


class TestSecrets:
    def test_it_never_logs_the_cookie_or_the_token(self, client, caplog):
        caplog.set_level(logging.DEBUG)

        with_cookie(client).get(SEARCH)
        with_cookie(client, "forged").get(SEARCH)

        assert "dave-session" not in caplog.text and DAVE_TOKEN not in caplog.text
        assert "forged" not in caplog.text


class TestLoginPage:
    def test_it_offers_sharinghubs_login(self, client):
        page = client.get("/mlflow/login/?next=/mlflow/ml/team/proj/tracking/").content.decode()

        back = "http%3A%2F%2Ftestserver%2Fmlflow%2Fml%2Fteam%2Fproj%2Ftracking%2F"
        assert f'href="{SHARINGHUB}/api/auth/login?redirect_uri={back}"' in page

    def test_it_offers_no_sharinghub_login_without_sharinghub(self, client, settings):
        settings.SHARINGHUB_URL = ""

        assert "/api/auth/login" not in client.get("/mlflow/login/").content.decode()
