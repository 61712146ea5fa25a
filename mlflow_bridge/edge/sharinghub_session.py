"""SharingHub mode (on when SHARINGHUB_URL is set): a browser signed in to SharingHub is signed
in here, as the GitLab user behind its SharingHub session cookie.

SharingHub keeps its user's GitLab token in its session (cookie SHARINGHUB_SESSION_COOKIE, on the
same host or a parent domain) and tells it to the cookie's holder: `GET <SHARINGHUB_URL>/api/auth/
info` answers `200 {"access_token": ...}`, or 401 when not signed in. The answer is kept in this
process's memory only, keyed by the cookie's SHA-256, for SHARINGHUB_SESSION_CACHE_TTL seconds
(a 401 for MEMBERSHIP_NEGATIVE_CACHE_TTL): neither the cookie nor the token is ever logged, nor
written to the database or the shared cache. From the token on, everything is as for that GitLab
token (access.credential_for). A cookie travels with any request the browser makes, so writes
carried by it must come from this site, as with the service's own session.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import urlencode

import requests
from django.conf import settings
from rest_framework.request import Request

from mlflow_bridge.edge import throttling
from mlflow_bridge.edge.authentication import (
    Authenticated,
    CredentialAuthentication,
    check_same_origin,
    project_path,
)
from mlflow_bridge.edge.errors import BridgeError, Unauthenticated, token_refused
from projects import access, gitlab

logger = logging.getLogger(__name__)

MAX_SESSIONS = 10_000  # answers kept per process, the oldest dropped first
_answers: OrderedDict[str, tuple[float, str | None]] = OrderedDict()  # digest -> (until, token)
_lock = threading.Lock()


class SharingHubUnavailable(Exception):
    """SharingHub could not say who holds a cookie."""


def forget_all() -> None:
    with _lock:
        _answers.clear()


def _remembered(digest: str) -> tuple[bool, str | None]:
    with _lock:
        until, token = _answers.get(digest, (0.0, None))
    return time.monotonic() < until, token


def _remember(digest: str, token: str | None) -> None:
    ttl = settings.SHARINGHUB_SESSION_CACHE_TTL if token else settings.MEMBERSHIP_NEGATIVE_CACHE_TTL
    with _lock:
        _answers[digest] = (time.monotonic() + ttl, token)
        _answers.move_to_end(digest)
        while len(_answers) > MAX_SESSIONS:
            _answers.popitem(last=False)


def logout_url() -> str:
    """SharingHub's logout, back to SharingHub: the session lives there."""
    back = urlencode({"redirect_uri": f"{settings.SHARINGHUB_URL}/"})
    return f"{settings.SHARINGHUB_URL}/api/auth/logout?{back}"


def ask_sharinghub(cookie: str) -> str | None:
    """The GitLab token behind a SharingHub session cookie; None when SharingHub says 401."""
    try:
        response = requests.get(
            f"{settings.SHARINGHUB_URL}/api/auth/info",
            cookies={settings.SHARINGHUB_SESSION_COOKIE: cookie},
            timeout=settings.GITLAB_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise SharingHubUnavailable(type(exc).__name__) from None
    if response.status_code == 401:
        return None
    try:
        token = response.json()["access_token"] if response.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        token = None
    if not isinstance(token, str) or not token:
        raise SharingHubUnavailable(f"answered {response.status_code} without a token")
    return token


def token_for(cookie: str, before_asking: Callable[[], None]) -> str | None:
    """The GitLab token behind `cookie`, remembered or asked of SharingHub (after
    `before_asking`, which may refuse: the lookup throttles)."""
    digest = hashlib.sha256(cookie.encode()).hexdigest()
    known, token = _remembered(digest)
    if known:
        return token
    before_asking()
    token = ask_sharinghub(cookie)
    _remember(digest, token)
    return token


class SharingHubSessionAuthentication(CredentialAuthentication):
    """Authenticates a browser by its SharingHub session: the GitLab token SharingHub keeps
    for it. Not its scheme without SHARINGHUB_URL or without the cookie."""

    headers = ("Cookie",)

    def authenticate(self, request: Request) -> Authenticated | None:
        if not settings.SHARINGHUB_URL:
            return None
        cookie = request.COOKIES.get(settings.SHARINGHUB_SESSION_COOKIE)
        if not cookie:
            return None
        check_same_origin(request)
        try:
            token = token_for(cookie, lambda: throttling.check_lookup(request))
        except SharingHubUnavailable as exc:
            logger.warning("SharingHub cannot say who holds a session: %s", exc)
            raise BridgeError(
                "TEMPORARILY_UNAVAILABLE",
                "SharingHub cannot confirm your session right now: try again in a moment.",
            ) from None
        if token is None:
            raise Unauthenticated("Your SharingHub session has ended: sign in to SharingHub again.")
        try:
            credential = access.credential_for(token, path=project_path(request))
        except gitlab.TokenRejected as exc:
            raise token_refused(exc) from None
        return credential.user, credential
