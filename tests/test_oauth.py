"""The GitLab token behind a session: used while fresh, refreshed once near expiry, or gone."""

from __future__ import annotations

import pytest
import requests
import responses
from django.contrib.auth import get_user_model
from social_django.models import UserSocialAuth

from projects import gitlab, oauth

BASE = "https://gitlab.example.com"
NOW = 1_800_000_000

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clock(settings, monkeypatch):
    settings.GITLAB_URL = BASE
    monkeypatch.setattr(oauth, "now", lambda: NOW)


def login(auth_time: int, expires_in: int = 7200, refresh_token: str = "refresh-1"):
    user = get_user_model().objects.create(username="dave")
    return UserSocialAuth.objects.create(user=user, provider="gitlab", uid="7", extra_data={
        "access_token": "access-1", "refresh_token": refresh_token, "expires_in": expires_in,
        "auth_time": auth_time, "token_type": "Bearer"})  # fmt: skip


def gitlab_renews():
    responses.post(f"{BASE}/oauth/token", json={
        "access_token": "access-2", "refresh_token": "refresh-2", "expires_in": 7200,
        "token_type": "Bearer", "created_at": NOW})  # fmt: skip


class TestAccessTokenFor:
    @responses.activate
    def test_it_uses_a_fresh_token_without_asking_gitlab(self):
        fresh = login(auth_time=NOW - 3600)

        assert oauth.access_token_for(fresh) == "access-1"
        assert len(responses.calls) == 0

    @responses.activate
    def test_it_refreshes_before_the_token_expires_and_keeps_the_new_pair(self):
        margin = int(oauth.REFRESH_MARGIN.total_seconds())
        dying = login(auth_time=NOW - 7200 + margin - 1)
        gitlab_renews()

        token = oauth.access_token_for(dying)

        assert token == "access-2"
        stored = UserSocialAuth.objects.get(pk=dying.pk).extra_data
        assert (stored["access_token"], stored["refresh_token"]) == ("access-2", "refresh-2")
        assert (stored["auth_time"], stored["expires_in"]) == (NOW, 7200)

    @responses.activate
    def test_it_takes_the_token_another_worker_refreshed_while_it_waited(self):
        stale = login(auth_time=NOW - 7200)
        UserSocialAuth.objects.filter(pk=stale.pk).update(extra_data={
            **stale.extra_data, "access_token": "access-2", "auth_time": NOW})  # fmt: skip

        assert oauth.access_token_for(stale) == "access-2"
        assert len(responses.calls) == 0

    @responses.activate
    def test_it_ends_the_login_when_gitlab_refuses_the_refresh(self):
        expired = login(auth_time=NOW - 8000)
        responses.post(f"{BASE}/oauth/token", status=400, json={"error": "invalid_grant"})

        with pytest.raises(oauth.LoginExpired):
            oauth.access_token_for(expired)

    def test_it_ends_the_login_when_there_is_no_refresh_token(self):
        expired = login(auth_time=NOW - 8000, refresh_token="")

        with pytest.raises(oauth.LoginExpired):
            oauth.access_token_for(expired)

    @responses.activate
    def test_it_keeps_the_login_when_gitlab_cannot_answer(self):
        dying = login(auth_time=NOW - 7100)
        responses.post(f"{BASE}/oauth/token", body=requests.ConnectionError("refused"))

        with pytest.raises(gitlab.GitLabUnavailable):
            oauth.access_token_for(dying)
        assert UserSocialAuth.objects.get(pk=dying.pk).extra_data["refresh_token"] == "refresh-1"


class TestExpiresAt:
    @pytest.mark.parametrize(
        "extra_data, expected",
        [
            ({"auth_time": 100, "expires_in": 7200}, 7300),
            ({"auth_time": 100, "expires": 7200}, 7300),  # older social-core versions
            ({"auth_time": 100}, 0),
            ({"auth_time": "x", "expires_in": 7200}, 0),
            ({}, 0),
        ],
        ids=["expires_in", "expires", "no-lifetime", "garbage", "nothing"],
    )
    def test_it_reads_when_the_token_expires(self, extra_data, expected):
        assert oauth.expires_at(extra_data) == expected

    def test_it_treats_an_unknown_expiry_as_due(self):
        assert oauth.needs_refresh({"access_token": "a"})
