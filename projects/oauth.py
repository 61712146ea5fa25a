"""The GitLab OAuth token behind a browser session, refreshed before it expires, one at a time.

social-auth-app-django keeps the token pair of a user's GitLab login in its `UserSocialAuth`
row, in the database: the session cookie carries only the session id. GitLab access tokens
live two hours and a refresh rotates both tokens (the old refresh token dies), so two workers
refreshing the same login at once would leave one of them logged out: refreshes are
serialised on that row (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the transaction is
BEGIN IMMEDIATE, see settings.py, which serialises writers the same way).
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.contrib import auth, messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest
from social_django.models import UserSocialAuth

from projects import gitlab, sealing

PROVIDER = "gitlab"
# The session key of a token signed in with on the login page (kept sealed, sealing.py).
SESSION_TOKEN = "gitlab_token"
# Refresh this long before GitLab's expiry, so a request never starts with a dying token.
REFRESH_MARGIN = timedelta(minutes=5)


class LoginExpired(Exception):
    """The GitLab login behind a session cannot be renewed: the user must log in again."""


def now() -> float:
    """The clock refreshes are decided by (a seam for tests)."""
    return time.time()


def expires_at(extra_data: dict) -> float:
    """When the stored access token expires (seconds since the epoch); 0 when unknown."""
    try:
        issued = float(extra_data.get("auth_time") or 0)
        lifetime = float(extra_data.get("expires_in") or extra_data.get("expires") or 0)
    except (TypeError, ValueError):
        return 0.0
    return issued + lifetime if issued and lifetime else 0.0


def needs_refresh(extra_data: dict) -> bool:
    return expires_at(extra_data) - now() < REFRESH_MARGIN.total_seconds()


def gitlab_login(user: AbstractBaseUser) -> UserSocialAuth | None:
    """The user's GitLab login, or None for a user who never logged in with GitLab."""
    return UserSocialAuth.objects.filter(user_id=user.pk, provider=PROVIDER).first()


def access_token_for(login: UserSocialAuth) -> str:
    """A GitLab access token of this login valid for at least REFRESH_MARGIN.

    Raises LoginExpired when GitLab refuses the refresh (the user revoked the application,
    or the refresh token is gone), GitLabUnavailable when GitLab cannot answer.
    """
    if not needs_refresh(login.extra_data) and login.extra_data.get("access_token"):
        return login.extra_data["access_token"]
    with transaction.atomic():
        login = UserSocialAuth.objects.select_for_update().get(pk=login.pk)
        # Another worker may have refreshed while this one waited for the lock.
        if not needs_refresh(login.extra_data) and login.extra_data.get("access_token"):
            return login.extra_data["access_token"]
        refresh_token = login.extra_data.get("refresh_token")
        if not refresh_token:
            raise LoginExpired("Your GitLab login has expired.")
        try:
            token = gitlab.refresh_oauth_token(refresh_token)
        except gitlab.TokenRejected:
            raise LoginExpired("GitLab did not renew your login (it may have been revoked).")
        login.extra_data.update(
            access_token=token.access_token,
            refresh_token=token.refresh_token,
            expires_in=token.expires_in,
            auth_time=int(now()),
        )
        login.save(update_fields=["extra_data"])
    return token.access_token


def session_token(request: HttpRequest) -> str | None:
    """The GitLab token the session signed in with on the login page, or None."""
    session = getattr(request, "session", None)
    sealed = session.get(SESSION_TOKEN) if session is not None else None
    return sealing.unseal(sealed) or None if sealed else None


def keep_session_token(request: HttpRequest, token: str) -> None:
    request.session[SESSION_TOKEN] = sealing.seal(token)


def log_out(request: HttpRequest, message: str, level: int = messages.INFO) -> None:
    """End the session here (GitLab's own session is left alone) and tell the user why."""
    auth.logout(request)
    # After logout, so the message outlives the flushed session (it travels in a cookie).
    messages.add_message(request, level, message)
