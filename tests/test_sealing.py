"""GitLab OAuth tokens are the user's secrets: sealed in the database with a key derived from
SECRET_KEY, readable by the service, never shown by the admin (projects/sealing.py)."""

from __future__ import annotations

import itertools
from urllib.parse import urlsplit

import pytest
import requests
import responses
from django.contrib.auth import get_user_model
from django.db import connection
from social_django.models import UserSocialAuth

from projects import oauth, sealing
from tests.gitlab_double import GitLabDouble
from tests.sessions import login_form

pytestmark = pytest.mark.django_db
_people = itertools.count()
OTHER_KEY = "a-former-secret-key-" + "x" * 40


def database_dump() -> str:
    """Every row of every table, as text: what a copy of the database gives away."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            rows.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(rows)


def browser_login(client, gitlab: GitLabDouble, user) -> None:
    """The login page's button, GitLab (the double) approving, back to the service."""
    page = client.get("/mlflow/login/").content.decode()
    form = login_form(page)
    gitlab.oauth.login_as = user
    begin = client.post(form.pop("action"), form)
    authorize = requests.get(begin["Location"], allow_redirects=False, timeout=10)
    back = urlsplit(authorize.headers["Location"])
    done = client.get(f"{back.path}?{back.query}")
    assert done.status_code == 302 and "/login/" not in done["Location"], done


@pytest.fixture
def logged_in(client, gitlab, settings):
    """Dave logged in twice with GitLab (each login issues a token pair); his grants."""
    settings.GITLAB_OAUTH_CLIENT_ID = settings.SOCIAL_AUTH_GITLAB_KEY = gitlab.oauth.client_id
    settings.GITLAB_OAUTH_CLIENT_SECRET = gitlab.oauth.client_secret
    settings.SOCIAL_AUTH_GITLAB_SECRET = gitlab.oauth.client_secret
    settings.GITLAB_URL = settings.SOCIAL_AUTH_GITLAB_API_URL = gitlab.url
    user = gitlab.add_user(f"sealed-{next(_people)}")
    for _ in range(2):
        browser_login(client, gitlab, user)
        client.logout()
    return [grant for grant in gitlab.oauth.grants if grant.user is user]


def tokens_of(grants) -> list[str]:
    return [token for g in grants for token in (g.access_token, g.refresh_token) if token]


class TestAtRest:
    def test_it_keeps_no_oauth_token_of_a_browser_login_in_the_database(self, logged_in):
        dump = database_dump()

        assert len(logged_in) == 2
        assert [token for token in tokens_of(logged_in) if token in dump] == []
        assert sealing.PREFIX in dump

    def test_it_still_reads_the_token_it_sealed(self, logged_in):
        login = UserSocialAuth.objects.get(uid=str(logged_in[-1].user.id))

        assert oauth.access_token_for(login) == logged_in[-1].access_token

    def test_it_refreshes_and_seals_the_new_pair(self, logged_in, monkeypatch):
        login = UserSocialAuth.objects.get(uid=str(logged_in[-1].user.id))
        monkeypatch.setattr(oauth, "now", lambda: logged_in[-1].expires_at)

        token = oauth.access_token_for(login)

        assert token != logged_in[-1].access_token
        assert token not in database_dump()
        assert UserSocialAuth.objects.get(pk=login.pk).extra_data["access_token"] == token


def stored_login(tokens: dict) -> UserSocialAuth:
    user = get_user_model().objects.create(username=f"stored-{next(_people)}")
    return UserSocialAuth.objects.create(user=user, provider="gitlab", uid=str(user.pk),
                                         extra_data={"expires_in": 7200, **tokens})  # fmt: skip


class TestKeyRotation:
    def test_it_opens_tokens_sealed_with_a_former_key_listed_as_fallback(self, settings):
        settings.SECRET_KEY = OTHER_KEY
        login = stored_login({"access_token": "access-1", "refresh_token": "refresh-1"})
        settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-key-" + "y" * 40, [OTHER_KEY]

        assert UserSocialAuth.objects.get(pk=login.pk).extra_data["access_token"] == "access-1"

    @responses.activate
    def test_it_ends_a_login_no_key_opens_instead_of_failing(self, settings):
        settings.SECRET_KEY = OTHER_KEY
        login = stored_login({"access_token": "access-1", "refresh_token": "refresh-1"})
        settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-key-" + "y" * 40, []

        reloaded = UserSocialAuth.objects.get(pk=login.pk)

        assert reloaded.extra_data["refresh_token"] == ""
        with pytest.raises(oauth.LoginExpired):
            oauth.access_token_for(reloaded)


class TestMigration:
    def test_it_seals_the_tokens_stored_in_clear_before(self):
        login = stored_login({})
        clear = {"access_token": "clear-access", "refresh_token": "clear-refresh", "id": 7}
        UserSocialAuth.objects.filter(pk=login.pk).update(extra_data=clear)

        changed = sealing.seal_rows(UserSocialAuth.objects.filter(pk=login.pk))

        assert changed == 1
        assert "clear-access" not in database_dump()
        stored = UserSocialAuth.objects.get(pk=login.pk).extra_data
        assert (stored["access_token"], stored["refresh_token"], stored["id"]) == (
            "clear-access", "clear-refresh", 7)  # fmt: skip


class TestAdmin:
    def test_it_shows_no_token_on_any_page_of_a_login(self, admin_client, logged_in):
        login = UserSocialAuth.objects.get(uid=str(logged_in[-1].user.id))
        pages = ["/admin/", "/admin/social_django/usersocialauth/",
                 f"/admin/social_django/usersocialauth/{login.pk}/change/"]  # fmt: skip

        shown = [admin_client.get(url) for url in pages]

        assert [page.status_code for page in shown] == [200, 200, 200]
        text = "".join(page.content.decode() for page in shown)
        assert login.user.username in text
        assert [t for t in tokens_of(logged_in) if t in text] == []
        assert "extra_data" not in text and sealing.PREFIX not in text

    def test_it_offers_no_form_to_change_a_login(self, admin_client, logged_in):
        login = UserSocialAuth.objects.get(uid=str(logged_in[-1].user.id))
        url = f"/admin/social_django/usersocialauth/{login.pk}/change/"

        admin_client.post(url, {"extra_data": '{"access_token": "mine"}', "provider": "x"})

        assert UserSocialAuth.objects.get(pk=login.pk).extra_data["access_token"] != "mine"
        assert admin_client.get("/admin/social_django/usersocialauth/add/").status_code == 403
