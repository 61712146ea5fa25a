"""Browser sessions at the tracking API, in-process: same-origin writes only, token headers
before the session, GitLab tokens refreshed and logins that expire. Two workers racing to
refresh one token: tests/server/test_session_auth.py."""

from __future__ import annotations

import pytest
import requests

from tests.api import Api
from tests.sessions import due_for_refresh, log_in

EVIL = "https://evil.example"
SEARCH = "ajax-api/2.0/mlflow/experiments/search?max_results=5"


@pytest.fixture
def uri(site, cast) -> str:
    return site.tracking_uri(cast.project.path)


@pytest.fixture
def seeded(site_project_a) -> dict:
    return site_project_a[1]


@pytest.fixture
def dave(site, gitlab, cast) -> requests.Session:
    """Dave (Developer) logged in; his session speaks JSON like MLflow's UI."""
    session = log_in(site.url, gitlab, cast.dave)
    session.headers["Accept"] = "application/json"
    return session


def experiment_names(uri: str, token: str) -> set[str]:
    found = Api(uri, token).ok("POST", "api/2.0/mlflow/experiments/search",
                               json={"max_results": 1000, "view_type": "ALL"})  # fmt: skip
    return {experiment["name"] for experiment in found["experiments"]}


class TestSameOrigin:
    def test_it_lets_the_site_itself_write_with_the_session(self, dave, uri, site):
        response = dave.post(uri + "ajax-api/2.0/mlflow/experiments/create",
                             json={"name": "from-the-ui"}, timeout=30,
                             headers={"Origin": site.url})  # fmt: skip

        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        "headers",
        [
            {"Origin": EVIL},
            {"Origin": "null"},
            {"Referer": f"{EVIL}/page"},
            {},
        ],
        ids=["other-origin", "opaque-origin", "other-referer", "neither"],
    )
    def test_it_refuses_a_cross_site_post_with_the_session_and_changes_nothing(
        self, dave, uri, cast, seeded, headers
    ):
        before = experiment_names(uri, cast.olivia.token)

        created = dave.post(uri + "ajax-api/2.0/mlflow/experiments/create",
                            json={"name": "planted"}, headers=headers, timeout=30)  # fmt: skip
        deleted = dave.post(uri + "ajax-api/2.0/mlflow/experiments/delete",
                            json={"experiment_id": seeded["experiment_id"]}, headers=headers,
                            timeout=30)  # fmt: skip

        assert created.status_code == deleted.status_code == 403
        assert "Cross-site request refused" in created.json()["message"]
        assert experiment_names(uri, cast.olivia.token) == before

    def test_it_refuses_a_cross_site_html_form_post(self, dave, uri, cast, seeded):
        # What <form method=post enctype=text/plain action=...> on another site sends.
        response = dave.post(uri + "ajax-api/2.0/mlflow/experiments/delete",
                             data=f'{{"experiment_id": "{seeded["experiment_id"]}", "x": "="}}',
                             headers={"Origin": EVIL, "Content-Type": "text/plain"},
                             timeout=30)  # fmt: skip

        assert response.status_code == 403
        experiment = Api(uri, cast.olivia.token).ok(
            "GET",
            "api/2.0/mlflow/experiments/get",
            params={"experiment_id": seeded["experiment_id"]},
        )
        assert experiment["experiment"]["lifecycle_stage"] == "active"

    def test_it_lets_tokens_write_from_anywhere(self, uri, cast):
        response = Api(uri, cast.dave.token).call(
            "POST", "api/2.0/mlflow/experiments/create", json={"name": "token-anywhere"},
            headers={"Origin": EVIL},
        )  # fmt: skip

        assert response.status_code == 200

    def test_it_lets_a_cross_site_page_read_nothing_it_could_not_anyway(self, dave, uri):
        # Reads are GETs the browser makes for any page; CORS keeps the answer from the page.
        response = dave.get(uri + SEARCH, timeout=30,
                            headers={"Origin": EVIL})  # fmt: skip

        assert "Access-Control-Allow-Origin" not in response.headers


class TestTokenBeforeSession:
    def test_it_acts_as_the_token_when_a_session_request_also_carries_one(
        self, dave, uri, cast, site
    ):
        response = dave.post(uri + "ajax-api/2.0/mlflow/experiments/create",
                             json={"name": "as-rita"}, timeout=30,
                             headers={"Authorization": f"Bearer {cast.rita.token}",
                                      "Origin": site.url})  # fmt: skip

        assert response.status_code == 403
        assert "you are Reporter" in response.json()["message"]

    def test_it_refuses_a_bad_token_even_with_a_valid_session(self, dave, uri):
        response = dave.get(uri + SEARCH, timeout=30,
                            headers={"Authorization": "Bearer glpat-nobody"})  # fmt: skip

        assert response.status_code == 401


class TestTokenRefresh:
    def test_it_refreshes_a_token_before_it_expires(self, site, gitlab, cast, uri):
        session = due_for_refresh(site, gitlab, cast.gina)
        first = gitlab.oauth.grant_of(cast.gina)

        response = session.get(uri + SEARCH, timeout=30)

        assert response.status_code == 200
        assert gitlab.oauth.grant_of(cast.gina) is not first

    def test_it_logs_the_user_out_with_a_message_when_the_refresh_fails(
        self, site, gitlab, cast, uri
    ):
        session = due_for_refresh(site, gitlab, cast.paula)
        gitlab.oauth.revoke_all(cast.paula)  # Paula revoked the application in GitLab

        api = session.get(uri + SEARCH, timeout=30)
        page = session.get(uri, headers={"Accept": "text/html"}, timeout=30)

        assert api.status_code == 401
        assert api.json()["message"] == "Your GitLab login has expired: log in again."
        assert "Basic" not in api.headers.get("WWW-Authenticate", "")
        assert page.url.startswith(f"{site.url}/mlflow/login/")
        assert "Your GitLab login has expired" in page.text
