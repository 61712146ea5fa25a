"""Sign in with a GitLab access token on the login page: checked as the API checks a token
(read_api), kept in the session only sealed, ended by logout."""

from __future__ import annotations

import itertools

import pytest

from tests.test_sealing import database_dump

pytestmark = pytest.mark.django_db
_people = itertools.count()
TOKEN_LOGIN = "/mlflow/login/token/"


@pytest.fixture
def member(gitlab, settings):
    """A GitLab user who is a Reporter of one project."""
    settings.GITLAB_URL = gitlab.url
    user = gitlab.add_user(f"signer-{next(_people)}")
    project = gitlab.add_project(f"sign/team/in-{user.id}")
    project.direct[user.id] = 20
    return user, project


def sign_in(client, token: str, next_url: str = ""):
    return client.post(TOKEN_LOGIN, {"token": token, "next": next_url}, follow=True)


class TestSignIn:
    def test_it_signs_in_with_a_read_api_token_and_reads_its_projects(self, client, member):
        user, project = member

        page = sign_in(client, user.token, f"/mlflow/{project.path}/connect/")

        assert page.status_code == 200
        assert page.redirect_chain[-1][0] == f"/mlflow/{project.path}/connect/"
        portal = client.get("/mlflow/").content.decode()
        assert project.path in portal and "Reporter" in portal
        assert f'<span class="muted">{user.username}</span>' in portal
        api = client.get(f"/mlflow/{project.path}/tracking/ajax-api/2.0/mlflow/experiments/search",
                         {"max_results": 10})  # fmt: skip
        assert api.status_code == 200

    def test_it_refuses_a_read_user_token_as_the_api_does(self, client, gitlab, member):
        user, project = member
        narrow = gitlab.add_token(user, ("read_user",))

        page = sign_in(client, narrow).content.decode()

        assert "lacks the read_api scope" in page
        assert client.get("/mlflow/")["Location"].startswith("/mlflow/login/")

    def test_it_refuses_a_token_gitlab_does_not_know(self, client, member):
        page = sign_in(client, "glpat-not-a-token").content.decode()

        assert "GitLab does not accept this token" in page
        assert client.get("/mlflow/")["Location"].startswith("/mlflow/login/")

    def test_it_keeps_the_token_only_sealed_in_the_session(self, client, member):
        user, _ = member

        sign_in(client, user.token)

        assert client.get("/mlflow/").status_code == 200
        assert user.token not in database_dump()

    def test_it_forgets_the_token_at_logout(self, client, member):
        user, _ = member
        sign_in(client, user.token)

        client.post("/mlflow/logout/")

        assert client.get("/mlflow/")["Location"].startswith("/mlflow/login/")


class TestLoginPage:
    def test_it_offers_the_token_field_after_the_gitlab_button(self, client, settings):
        settings.GITLAB_OAUTH_CLIENT_ID = settings.SOCIAL_AUTH_GITLAB_KEY = "app-id"
        settings.GITLAB_OAUTH_CLIENT_SECRET = settings.SOCIAL_AUTH_GITLAB_SECRET = "app-secret"

        page = client.get("/mlflow/login/").content.decode()

        assert 0 < page.index("Log in with GitLab") < page.index('name="token"')
        assert 'type="password"' in page

    def test_it_offers_the_token_field_without_an_oauth_application(self, client, settings):
        settings.GITLAB_OAUTH_CLIENT_ID = ""

        page = client.get("/mlflow/login/").content.decode()

        assert 'name="token"' in page and "read_api" in page
        assert "Log in with GitLab</button>" not in page
