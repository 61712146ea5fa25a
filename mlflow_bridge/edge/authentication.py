"""Who is calling: one DRF authentication class per kind of credential.

They are listed once, in order, in REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES (settings.py).
Each has DRF's three outcomes: None when the request carries no credential of its kind, a
raised `Unauthenticated` (401) when it carries a bad one, and `(GitLabUser, Credential)` on
success: `request.user` is the GitLab user, `request.auth` the credential (its token, the
token's SHA-256, its CI job, whether it proved the read_api scope). Each names the headers it
reads (`headers`); dispatch.py keeps every one of them from MLflow (credential_headers).

- GitLabIdTokenAuthentication: a GitLab CI job's id_token (a JWT GitLab signed), verified
  offline: the job's user in the job's own project, with no call to GitLab's API.
- CIJobTokenAuthentication: a CI_JOB_TOKEN in `JOB-TOKEN`, or a `glcbt-` token in any token
  header. It authenticates as the user who triggered the job; its project access is the
  job's (projects/jobs.py).
- GitLabTokenAuthentication: any other token (personal, project, group, OAuth) in
  `Authorization: Bearer`, in Basic (the password), or in GitLab's own `PRIVATE-TOKEN`.
- GitLabSessionAuthentication: a browser, by the GitLab token its session signed in with on
  the login page (kept sealed), else by the GitLab OAuth login of its session; a request
  that may change state must come from this site.

A token GitLab has not seen recently is asked of GitLab: throttling.check_lookup may refuse
that first (429), so that unknown credentials cannot make the service hammer GitLab.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import NoReturn
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from mlflow_bridge.edge import throttling
from mlflow_bridge.edge.errors import CHALLENGE, BridgeError, Unauthenticated, token_refused
from projects import access, gitlab, idtokens, jobs, oauth
from projects.models import GitLabUser

Authenticated = tuple[GitLabUser, access.Credential]


def token_from_header(header: str) -> str | None:
    """The token in an Authorization header; None when there is no header at all."""
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        if not credentials:
            raise Unauthenticated(
                "Empty Bearer token. Set MLFLOW_TRACKING_TOKEN to a GitLab token."
            )
        return credentials
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("Malformed Basic credentials: expected base64 of user:token.")
        _, separator, password = decoded.partition(":")
        if not separator or not password:
            raise Unauthenticated(
                "Basic credentials need a GitLab token as the password (MLFLOW_TRACKING_PASSWORD)."
            )
        return password
    raise Unauthenticated(f"Unsupported authorization scheme {scheme!r}: use Bearer or Basic.")


# Where a request may carry a token, in the order they are read.
TOKEN_HEADERS = ("Authorization", "Private-Token", "Job-Token")


def carries_token(request: HttpRequest) -> bool:
    return any(header in request.headers for header in TOKEN_HEADERS)


def presented_token(request: HttpRequest) -> tuple[str, str] | None:
    """(header, token) of the request's token: Authorization first, then GitLab's own header
    names; None when it carries none."""
    token = token_from_header(request.headers.get("Authorization", ""))
    if token is not None:
        return "Authorization", token
    for header in TOKEN_HEADERS[1:]:
        if token := request.headers.get(header):
            return header, token
    return None


def project_path(request: Request | HttpRequest) -> str | None:
    """The project the tracking view found in the URL before authenticating (views.locate):
    its access is then read with the token, in one query."""
    return getattr(getattr(request, "_request", request), "project_path", None)


class CredentialAuthentication(BaseAuthentication):
    """One kind of credential. `headers` names every request header it reads: dispatch.py keeps
    each of them from MLflow (credential_headers)."""

    headers: tuple[str, ...] = ()

    def authenticate_header(self, request: Request) -> str:
        return CHALLENGE


class GitLabIdTokenAuthentication(CredentialAuthentication):
    """Authenticates a GitLab CI job by its id_token, a JWT GitLab signed, verified offline
    (projects/idtokens.py): in `Authorization` (Bearer, or Basic's password)."""

    headers = ("Authorization",)

    def authenticate(self, request: Request) -> Authenticated | None:
        presented = presented_token(request)
        if (
            presented is None
            or presented[0] != "Authorization"
            or not idtokens.is_jwt(presented[1])
        ):
            return None
        try:
            credential = idtokens.credential_for(presented[1])
        except idtokens.Refused as exc:
            raise Unauthenticated(str(exc))
        return credential.user, credential


class GitLabTokenAuthentication(CredentialAuthentication):
    """Authenticates a GitLab personal, project, group or OAuth token (GET /user).

    Not its scheme: no token, or a CI job's (CIJobTokenAuthentication). A token GitLab's
    GET /user refuses may still be a job token of a self-managed prefix: access.py asks
    GET /job too.
    """

    headers = TOKEN_HEADERS

    def authenticate(self, request: Request) -> Authenticated | None:
        presented = presented_token(request)
        if presented is None or is_job_token(*presented):
            return None
        return _gitlab_credential(request, presented[1])


class CIJobTokenAuthentication(CredentialAuthentication):
    """Authenticates a CI_JOB_TOKEN (GET /job) as the user who triggered the job, acting in the
    job's project only (projects/jobs.py): in `JOB-TOKEN`, or a `glcbt-` token anywhere."""

    headers = TOKEN_HEADERS

    def authenticate(self, request: Request) -> Authenticated | None:
        presented = presented_token(request)
        if presented is None or not is_job_token(*presented):
            return None
        return _gitlab_credential(request, presented[1])


def is_job_token(header: str, token: str) -> bool:
    return header == "Job-Token" or jobs.looks_like_job_token(token)


def _gitlab_credential(request: Request, token: str) -> Authenticated:
    """The user and credential GitLab (or the fingerprint cache) knows the token as; 401 when
    GitLab refuses it."""
    try:
        credential = access.credential_for(
            token, lambda: throttling.check_lookup(request), project_path(request)
        )
    except gitlab.TokenRejected as exc:
        raise token_refused(exc)
    return credential.user, credential


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def is_same_origin(request: HttpRequest) -> bool:
    """Whether the request's Origin (or, lacking it, its Referer) is this site."""
    origin = request.headers.get("Origin")
    if origin is None:
        referer = urlsplit(request.headers.get("Referer", ""))
        origin = f"{referer.scheme}://{referer.netloc}" if referer.netloc else None
    if not origin or origin == "null":
        return False
    return origin in (f"{request.scheme}://{request.get_host()}", *settings.CSRF_TRUSTED_ORIGINS)


def check_same_origin(request: HttpRequest) -> None:
    """A session's writes come from this site's pages (sessions: Django's, SharingHub's)."""
    if request.method not in SAFE_METHODS and not is_same_origin(request):
        raise BridgeError(
            "PERMISSION_DENIED",
            "Cross-site request refused: requests made with a session must come from this "
            "site. Scripts authenticate with a GitLab token instead.",
        )


def credential_headers(classes: Iterable[type[BaseAuthentication]]) -> frozenset[str]:
    """Every header the authentication classes read credentials from (dispatch.py drops them)."""
    return frozenset(header for cls in classes for header in cls.headers)


class GitLabSessionAuthentication(CredentialAuthentication):
    """Authenticates a browser by its session: the GitLab token it signed in with on the login
    page, else the GitLab OAuth login of the session's user.

    A session cookie travels with any request the browser makes, whoever made the page, so a
    request that may change state must come from this site (MLflow's UI sends no CSRF token,
    but browsers send Origin). Token requests are not concerned: no page can make a browser
    send a token header. Works on DRF's Request and on a plain Django request (the pages).
    """

    headers = ("Cookie",)

    def authenticate(self, request: Request | HttpRequest) -> Authenticated | None:
        django_request = getattr(request, "_request", request)
        user = getattr(django_request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        # A token signed in with on the login page, else the session's GitLab OAuth login.
        token = oauth.session_token(django_request)
        login = oauth.gitlab_login(user) if token is None else None
        if token is None and login is None:
            return None
        check_same_origin(request)
        try:
            credential = access.credential_for(
                token or oauth.access_token_for(login), path=project_path(request)
            )
        except gitlab.TokenScopeTooNarrow:
            # Logging in again would not help: the OAuth application lacks the scope.
            end_session(
                django_request,
                "GitLab granted this site no read_api scope: ask an administrator to give its "
                "GitLab application the read_api scope.",
            )
        except (oauth.LoginExpired, gitlab.TokenRejected):
            end_session(django_request, "Your GitLab login has expired: log in again.")
        return credential.user, credential


def end_session(request: HttpRequest, why: str) -> NoReturn:
    """Log the browser out, telling why, and refuse the request (401 without a challenge: a
    browser would answer one with its own password dialog)."""
    oauth.log_out(request, why, messages.WARNING)
    raise BridgeError("UNAUTHENTICATED", why)
