"""Who is calling: a GitLab token from `Authorization: Bearer` or Basic (password = token).

Like DRF's authentication classes, `authenticate` has three outcomes: None when the request
carries no credentials of this scheme, a raised BridgeError when it carries bad ones, and a
(GitLab user, token) pair on success. A GitLab CI job token (CI_JOB_TOKEN) authenticates as the
user who triggered the job; its project access is the job's (projects/jobs.py), and the runs
it creates are tagged with the job (`tag_job_run`).

A browser authenticates by its session instead (GitLabSessionAuthentication, after a GitLab
login); `authenticate` tries the schemes in order, so an explicit token header always wins.
"""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest

from mlflow_bridge.errors import BridgeError
from mlflow_bridge.routes import Route
from projects import access, gitlab, oauth
from projects.models import GitLabUser

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mlflow", Basic realm="mlflow"'}


def unauthenticated(message: str) -> BridgeError:
    return BridgeError("UNAUTHENTICATED", message, headers=CHALLENGE)


def token_refused(exc: gitlab.TokenRejected) -> BridgeError:
    """401 for a token GitLab refused, saying how to get one it accepts."""
    if isinstance(exc, gitlab.TokenScopeTooNarrow):
        return unauthenticated(
            "Your GitLab token lacks the read_api scope: create a token with read_api."
        )
    return unauthenticated("GitLab does not accept this token (unknown, expired or revoked).")


def token_from_header(header: str) -> str | None:
    """The token in an Authorization header; None when there is no header at all."""
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        if not credentials:
            raise unauthenticated(
                "Empty Bearer token. Set MLFLOW_TRACKING_TOKEN to a GitLab token."
            )
        return credentials
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise unauthenticated("Malformed Basic credentials: expected base64 of user:token.")
        _, separator, password = decoded.partition(":")
        if not separator or not password:
            raise unauthenticated(
                "Basic credentials need a GitLab token as the password (MLFLOW_TRACKING_PASSWORD)."
            )
        return password
    raise unauthenticated(f"Unsupported authorization scheme {scheme!r}: use Bearer or Basic.")


class GitLabTokenAuthentication:
    """Authenticates a GitLab personal, project, group, OAuth or CI job token."""

    def authenticate(self, request: HttpRequest) -> tuple[GitLabUser, str] | None:
        token = token_from_header(request.headers.get("Authorization", ""))
        if token is None:
            return None
        try:
            return access.user_for_token(token), token
        except gitlab.TokenRejected as exc:
            raise token_refused(exc)


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


class GitLabSessionAuthentication:
    """Authenticates a browser by its session: the GitLab OAuth login of the session's user.

    A session cookie travels with any request the browser makes, whoever made the page, so a
    request that may change state must come from this site (MLflow's UI sends no CSRF token,
    but browsers send Origin). Token requests are not concerned: no page can make a browser
    send a token header.
    """

    def authenticate(self, request: HttpRequest) -> tuple[GitLabUser, str] | None:
        user = getattr(request, "user", None)
        login = oauth.gitlab_login(user) if user is not None and user.is_authenticated else None
        if login is None:
            return None
        if request.method not in SAFE_METHODS and not is_same_origin(request):
            raise BridgeError(
                "PERMISSION_DENIED",
                "Cross-site request refused: requests made with a session must come from this "
                "site. Scripts authenticate with a GitLab token instead.",
            )
        try:
            token = oauth.access_token_for(login)
            return access.user_for_token(token), token
        except (oauth.LoginExpired, gitlab.TokenRejected):
            oauth.log_out(request, "Your GitLab login has expired: log in again.", messages.WARNING)
            # No Basic challenge: a browser would answer it with its own password dialog.
            raise BridgeError("UNAUTHENTICATED", "Your GitLab login has expired: log in again.")


AUTHENTICATION_CLASSES = (GitLabTokenAuthentication, GitLabSessionAuthentication)


def authenticate(request: HttpRequest) -> tuple[GitLabUser, str] | None:
    """The first scheme the request carries decides; None when it carries none."""
    for authentication_class in AUTHENTICATION_CLASSES:
        authenticated = authentication_class().authenticate(request)
        if authenticated is not None:
            return authenticated
    return None


JOB_TAG_KEYS = ("gitlab.job_url", "gitlab.job_id", "gitlab.pipeline_id")
RUN_CREATE_RULE = "/2.0/mlflow/runs/create"


def tag_job_run(
    project_access: access.ProjectAccess, route: Route, body: bytes | None, document: dict
) -> bytes | None:
    """The body to send on: a run a CI job creates gets the job's URL, id and pipeline id as
    tags. Only the bridge sets them: storage.check_reserved_tags refuses them from clients."""
    job = project_access.job
    if job is None or route.rule != RUN_CREATE_RULE:
        return body
    tags = list(document.get("tags")) if isinstance(document.get("tags"), list) else []
    values = (job.web_url, str(job.id), str(job.pipeline_id))
    tags += [{"key": key, "value": value} for key, value in zip(JOB_TAG_KEYS, values, strict=True)]
    return json.dumps({**document, "tags": tags}).encode()
