"""The session cookie: HttpOnly and SameSite=Lax always, Secure over HTTPS (only then)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def oauth_application(settings):
    settings.GITLAB_OAUTH_CLIENT_ID = settings.SOCIAL_AUTH_GITLAB_KEY = "app-id"
    settings.GITLAB_OAUTH_CLIENT_SECRET = settings.SOCIAL_AUTH_GITLAB_SECRET = "app-secret"


def session_cookie(client, **request):
    """The session cookie set when a login starts (the OAuth state goes into the session)."""
    response = client.post("/mlflow/auth/login/gitlab/", **request)
    assert response.status_code == 302
    return response.cookies["sessionid"]


def test_it_keeps_the_session_cookie_from_scripts_and_cross_site_requests(client):
    cookie = session_cookie(client)

    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


def test_it_marks_cookies_secure_over_https(client):
    assert session_cookie(client, secure=True)["secure"] is True


def test_it_cannot_mark_cookies_secure_over_plain_http(client):
    assert not session_cookie(client)["secure"]


def test_it_ignores_x_forwarded_proto_unless_trusted(client):
    assert not session_cookie(client, HTTP_X_FORWARDED_PROTO="https")["secure"]
