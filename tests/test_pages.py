"""Pages for people, in-process: login and back, logout, the 404 page, the portal and the
connect page. Logins go through the GitLab double's OAuth provider. The connect page's shell
check runs curl against a live server: tests/server/test_pages.py."""

from __future__ import annotations

import re

import pytest
import requests

from tests.sessions import log_in, login_form


@pytest.fixture
def base(site) -> str:
    return site.url


@pytest.fixture
def seeded(site_project_a) -> dict:
    return site_project_a[1]


def visible_text(html: str) -> str:
    """The page without its tags, CSRF tokens and whitespace runs, to compare two pages."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


class TestLogin:
    def test_it_sends_a_logged_out_visitor_of_a_project_page_to_the_login_page(self, base, cast):
        response = requests.get(
            f"{base}/mlflow/{cast.project.path}/tracking/",
            headers={"Accept": "text/html"},
            allow_redirects=False,
            timeout=30,
        )

        assert response.status_code == 302
        assert response.headers["Location"] == (
            f"/mlflow/login/?next=/mlflow/{cast.project.path}/tracking/"
        )

    def test_it_shows_a_log_in_with_gitlab_button(self, base):
        page = requests.get(f"{base}/mlflow/login/", timeout=30)

        assert "Log in with GitLab" in page.text
        assert login_form(page.text)["action"] == "/mlflow/auth/login/gitlab/"

    def test_it_brings_the_user_back_to_the_page_asked_for(self, base, gitlab, cast):
        page = f"/mlflow/{cast.project.path}/tracking/"

        session = log_in(base, gitlab, cast.dave, next_url=page)

        assert session.landed_on == page
        assert session.get(base + page, timeout=30).status_code == 200

    @pytest.mark.parametrize(
        "target",
        ["https://evil.example/", "//evil.example/x", "http://127.0.0.1:1/", "javascript:alert(1)"],
        ids=["other-site", "scheme-relative", "other-port", "javascript"],
    )
    def test_it_ignores_a_next_target_outside_this_site(self, base, gitlab, cast, target):
        session = log_in(base, gitlab, cast.dave, next_url=target)

        assert session.landed_on == "/mlflow/"

    def test_it_answers_api_clients_without_credentials_with_401_not_a_redirect(self, base, cast):
        response = requests.get(
            f"{base}/mlflow/{cast.project.path}/tracking/api/2.0/mlflow/experiments/search",
            timeout=30,
        )

        assert response.status_code == 401
        assert response.json()["error_code"] == "UNAUTHENTICATED"

    def test_it_keeps_the_session_cookie_away_from_scripts_and_other_sites(
        self, base, gitlab, cast
    ):
        session = log_in(base, gitlab, cast.dave)

        cookie = next(c for c in session.cookies if c.name == "sessionid")
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert cookie.get_nonstandard_attr("SameSite") == "Lax"
        assert not cookie.secure  # plain HTTP here; HTTPS: see test_cookies.py

    def test_it_keeps_the_gitlab_token_out_of_the_cookies(self, base, gitlab, cast):
        session = log_in(base, gitlab, cast.dave)

        token = gitlab.oauth.grant_of(cast.dave).access_token
        assert all(token not in (cookie.value or "") for cookie in session.cookies)

    def test_it_says_when_gitlab_login_was_refused(self, base, gitlab):
        session = requests.Session()
        page = session.get(f"{base}/mlflow/login/", timeout=30)
        form = login_form(page.text)
        gitlab.oauth.login_as = None  # the user clicks "Deny" on GitLab

        response = session.post(base + form.pop("action"), data=form, timeout=30,
                                headers={"Origin": base})  # fmt: skip

        assert response.url == f"{base}/mlflow/login/"
        assert "Log in with GitLab" in response.text
        assert 'class="messages"' in response.text


class TestLogout:
    def test_it_ends_the_session_and_says_so(self, base, gitlab, cast, seeded):
        session = log_in(base, gitlab, cast.dave)
        portal = session.get(f"{base}/mlflow/", timeout=30)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', portal.text).group(1)

        response = session.post(f"{base}/mlflow/logout/", data={"csrfmiddlewaretoken": csrf},
                                headers={"Referer": f"{base}/mlflow/"}, timeout=30)  # fmt: skip

        assert response.url == f"{base}/mlflow/login/"
        assert "You are logged out of SharingHub MLflow" in response.text
        api = f"{base}/mlflow/{cast.project.path}/tracking/ajax-api/2.0/mlflow/experiments/search"
        after = session.get(api, params={"max_results": 5}, headers={"Accept": "*/*"}, timeout=30)
        assert after.status_code == 401

    def test_it_asks_before_logging_out_on_get(self, base, gitlab, cast):
        session = log_in(base, gitlab, cast.dave)

        page = session.get(f"{base}/mlflow/logout/", timeout=30)

        assert "Log out?" in page.text
        assert session.get(f"{base}/mlflow/", timeout=30).url == f"{base}/mlflow/"


class TestNotFoundPage:
    def test_it_shows_non_members_the_page_of_a_missing_project(self, base, gitlab, cast, seeded):
        session = log_in(base, gitlab, cast.charlie)

        existing = session.get(f"{base}/mlflow/{cast.project.path}/tracking/", timeout=30)
        missing = session.get(f"{base}/mlflow/ml/team/no-such-project/tracking/", timeout=30)

        assert existing.status_code == missing.status_code == 404
        assert "Project not found" in existing.text
        assert visible_text(existing.text) == visible_text(missing.text)

    def test_it_answers_api_calls_of_non_members_in_json(self, base, gitlab, cast, seeded):
        session = log_in(base, gitlab, cast.charlie)

        response = session.get(
            f"{base}/mlflow/{cast.project.path}/tracking/ajax-api/2.0/mlflow/experiments/search",
            params={"max_results": 5},
            headers={"Accept": "application/json"},
            timeout=30,
        )

        assert response.status_code == 404
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


class TestPortal:
    def test_it_redirects_the_site_root_to_the_portal(self, base):
        response = requests.get(base + "/", allow_redirects=False, timeout=30)

        assert response.status_code == 302
        assert response.headers["Location"] == "/mlflow/"

    def test_it_lists_the_users_projects_with_role_and_mlflow_counts(
        self, base, gitlab, cast, seeded
    ):
        session = log_in(base, gitlab, cast.olivia)

        page = session.get(f"{base}/mlflow/", timeout=30).text

        rows = dict(re.findall(r'<tr data-path="([^"]+)">(.*?)</tr>', page, re.S))
        assert {cast.project.path, cast.other_project.path} <= set(rows)
        row = visible_text(rows[cast.project.path])
        assert "Owner" in row and "read-only" not in row
        assert re.search(r"Owner (\d+) (\d+) (\d+)", row), row
        assert f'href="/mlflow/{cast.project.path}/tracking/"' in rows[cast.project.path]
        assert f'href="/mlflow/{cast.project.path}/connect/"' in rows[cast.project.path]

    def test_it_marks_read_only_roles(self, base, gitlab, cast, seeded):
        session = log_in(base, gitlab, cast.rita)

        page = session.get(f"{base}/mlflow/", timeout=30).text

        row = re.search(rf'<tr data-path="{cast.project.path}">(.*?)</tr>', page, re.S).group(1)
        assert "Reporter" in row and "read-only" in row

    def test_it_searches_projects_by_path(self, base, gitlab, cast, seeded):
        session = log_in(base, gitlab, cast.olivia)

        page = session.get(f"{base}/mlflow/", params={"q": "OTHER"}, timeout=30).text

        assert re.findall(r'<tr data-path="([^"]+)">', page) == [cast.other_project.path]

    def test_it_follows_gitlabs_pages_to_the_last_project(self, base, gitlab, cast):
        newcomer = gitlab.add_user("newcomer")
        projects = [gitlab.add_project(f"ml/paged/p{i}") for i in range(3)]
        for project in projects:
            project.direct[newcomer.id] = 20
        session = log_in(base, gitlab, newcomer)
        gitlab.max_per_page = 2
        try:
            page = session.get(f"{base}/mlflow/", timeout=30).text
        finally:
            gitlab.max_per_page = 100

        listed = set(re.findall(r'<tr data-path="([^"]+)">', page))
        assert listed == {project.path for project in projects}


class TestConnectPage:
    @pytest.fixture
    def page(self, base, gitlab, cast) -> str:
        session = log_in(base, gitlab, cast.dave)
        response = session.get(f"{base}/mlflow/{cast.project.path}/connect/", timeout=30)
        assert response.status_code == 200
        return response.text

    def test_it_gives_the_tracking_uri_and_a_link_to_create_a_token(self, base, gitlab, cast, page):
        uri = f"{base}/mlflow/{cast.project.path}/tracking/"

        assert f"export MLFLOW_TRACKING_URI={uri}" in page
        assert "export MLFLOW_TRACKING_TOKEN=" in page
        token_url = (
            f"{gitlab.url}/-/user_settings/personal_access_tokens?name=mlflow&amp;scopes=read_api"
        )
        assert f'href="{token_url}"' in page

    def test_it_gives_python_ci_and_shell_snippets(self, base, cast, page):
        uri = f"{base}/mlflow/{cast.project.path}/tracking/"

        assert f'mlflow.set_tracking_uri("{uri}")' in page
        assert 'mlflow.set_experiment("churn")' in page
        assert "mlflow.autolog()" in page
        assert f'MLFLOW_TRACKING_URI: "{uri}"' in page
        assert f"{uri}api/2.0/mlflow/experiments/search" in page

    def test_it_logs_from_ci_with_the_job_token_and_a_pinned_client(self, page):
        ci = re.search(r'<pre id="snippet-ci"><code>(.*?)</code>', page, re.S).group(1)

        assert "MLFLOW_TRACKING_TOKEN: $CI_JOB_TOKEN" in ci
        assert 'pip install "mlflow==3.17.*"' in ci
        # The site here has neither GITLAB_SERVICE_TOKEN nor a developer default role.
        assert "On this server a job token only reads" in page

    def test_it_names_experiments_without_suffix_and_says_the_suffix_works(self, cast, page):
        assert f'"churn ({cast.project.id})"' in page
        assert "names the same experiment" in page

    def test_it_never_shows_the_users_own_token(self, gitlab, cast, page):
        grant = gitlab.oauth.grant_of(cast.dave)

        assert grant.access_token not in page
        assert grant.refresh_token not in page
        assert cast.dave.token not in page

    def test_it_is_the_404_page_for_non_members(self, base, gitlab, cast):
        session = log_in(base, gitlab, cast.charlie)

        existing = session.get(f"{base}/mlflow/{cast.project.path}/connect/", timeout=30)
        missing = session.get(f"{base}/mlflow/ml/team/nothing/connect/", timeout=30)

        assert existing.status_code == missing.status_code == 404
        assert visible_text(existing.text) == visible_text(missing.text)

    def test_it_sends_logged_out_visitors_to_the_login_page(self, base, cast):
        response = requests.get(f"{base}/mlflow/{cast.project.path}/connect/",
                                allow_redirects=False, timeout=30)  # fmt: skip

        assert response.headers["Location"] == (
            f"/mlflow/login/?next=/mlflow/{cast.project.path}/connect/"
        )
