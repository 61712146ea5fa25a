"""The login page in-process: its button, LOGIN_AUTO_REDIRECT, and `next` kept on this site."""

from __future__ import annotations

import pytest
from django.contrib.messages import constants
from django.contrib.messages.storage.cookie import CookieStorage
from django.http import HttpRequest, HttpResponse

pytestmark = pytest.mark.django_db
AUTO_SUBMIT = "keepFragment(); form.submit();"


@pytest.fixture(autouse=True)
def oauth_application(settings):
    settings.GITLAB_OAUTH_CLIENT_ID = settings.SOCIAL_AUTH_GITLAB_KEY = "app-id"
    settings.GITLAB_OAUTH_CLIENT_SECRET = settings.SOCIAL_AUTH_GITLAB_SECRET = "app-secret"


def with_a_message(client, text: str) -> None:
    """A message waiting in the cookie, as logout or a failed login leaves one."""
    storage = CookieStorage(HttpRequest())
    storage.add(constants.INFO, text)
    response = HttpResponse()
    storage.update(response)
    client.cookies[storage.cookie_name] = response.cookies[storage.cookie_name].value


def test_it_shows_the_button_without_going_to_gitlab_by_itself(client):
    page = client.get("/mlflow/login/").content.decode()

    assert "Log in with GitLab" in page
    assert AUTO_SUBMIT not in page


def test_it_goes_straight_to_gitlab_with_login_auto_redirect(client, settings):
    settings.LOGIN_AUTO_REDIRECT = True

    page = client.get("/mlflow/login/", {"next": "/mlflow/ml/a/tracking/"}).content.decode()

    assert AUTO_SUBMIT in page
    assert 'name="next" value="/mlflow/ml/a/tracking/"' in page


def test_it_stops_to_show_a_message_even_with_login_auto_redirect(client, settings):
    settings.LOGIN_AUTO_REDIRECT = True
    with_a_message(client, "You are logged out of SharingHub MLflow.")

    page = client.get("/mlflow/login/").content.decode()

    assert "You are logged out of SharingHub MLflow." in page
    assert AUTO_SUBMIT not in page


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\\\evil.example/"],
    ids=["absolute", "scheme-relative", "backslashes"],
)  # fmt: skip
def test_it_replaces_a_next_target_outside_this_site_by_the_portal(client, target):
    page = client.get("/mlflow/login/", {"next": target}).content.decode()

    assert 'name="next" value="/mlflow/"' in page


def test_it_offers_only_the_token_sign_in_when_oauth_is_not_configured(client, settings):
    settings.GITLAB_OAUTH_CLIENT_ID = ""

    page = client.get("/mlflow/login/").content.decode()

    assert "Browser login is not configured" not in page
    assert "login-form" not in page and 'id="token-form"' in page
