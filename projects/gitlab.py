"""The one module that talks to GitLab: typed answers in, one exception family out."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings

from projects import gitlab_health
from projects.metrics import GITLAB_CALLS

logger = logging.getLogger(__name__)


class GitLabError(Exception):
    """GitLab did not give a usable answer."""


class TokenRejected(GitLabError):
    """GitLab does not accept the token (unknown, expired or revoked)."""


class TokenScopeTooNarrow(TokenRejected):
    """The token is valid but lacks the `read_api` scope."""


class GitLabUnavailable(GitLabError):
    """GitLab is unreachable, timed out, rate limited us or answered 5xx."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        # A few words for `serve` and /readyz: "unreachable (ConnectTimeout)", "answers 503".
        self.reason = reason or message


class CircuitBreaker:
    """Stops asking GitLab for GITLAB_COOL_OFF seconds once GITLAB_BREAKER_FAILURES calls in a
    row have timed out or failed to connect, so that a slow GitLab does not hold a worker for
    GITLAB_TIMEOUT on every request: meanwhile calls fail at once, as in an outage. The first
    call after the cool-off asks GitLab again; an answer of any status closes the breaker.

    Per process: each gunicorn worker learns on its own, at the cost of a few slow calls each.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0

    def check(self, base_url: str) -> None:
        """Raises GitLabUnavailable while the breaker is open."""
        with self._lock:
            remaining = self._open_until - time.monotonic()
            failures = self._failures
        if remaining > 0:
            GITLAB_CALLS.labels("not_asked").inc()
            raise GitLabUnavailable(
                f"GitLab at {base_url} timed out or was unreachable {failures} times in a row",
                reason=f"not asked for {remaining:.0f}s after {failures} timeouts in a row",
            )

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            failures = self._failures
            if failures >= settings.GITLAB_BREAKER_FAILURES:
                self._open_until = time.monotonic() + settings.GITLAB_COOL_OFF
        if failures >= settings.GITLAB_BREAKER_FAILURES:
            logger.warning(
                "GitLab failed %d calls in a row: not asking it for %ss (GITLAB_COOL_OFF)",
                failures,
                settings.GITLAB_COOL_OFF,
            )

    def record_answer(self) -> None:
        with self._lock:
            self._failures = 0
            self._open_until = 0.0


breaker = CircuitBreaker()
_session: tuple[int, requests.Session] | None = None

# Idempotent GETs are asked again after these answers, waiting as GitLab's Retry-After says
# (RETRY_WAIT without one) up to RETRY_WAIT_LIMIT; asked to wait longer, the call fails now.
RETRIED_STATUSES = (429, 502, 503)
RETRIES = 2
RETRY_WAIT = 0.2
RETRY_WAIT_LIMIT = 2.0


def session() -> requests.Session:
    """This process's connections to GitLab, kept open between calls; a forked worker makes its
    own rather than share its parent's sockets."""
    global _session
    if _session is None or _session[0] != os.getpid():
        shared = requests.Session()
        # One session serves every user's token: it must carry no cookie from one call to the
        # next (GitLab's API also authenticates by its session cookie).
        shared.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        _session = (os.getpid(), shared)
    return _session[1]


def send(method: str, url: str, *, timeout: float | None = None, **kwargs) -> requests.Response:
    """Every call to GitLab: the breaker, the call metric, the outage clock (gitlab_health),
    and GETs retried on 429/502/503. Raises GitLabUnavailable when GitLab cannot be reached, is
    not asked (breaker open) or still answers 429/5xx; returns any other answer."""
    base_url = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    breaker.check(base_url)
    retries = RETRIES if method == "GET" else 0
    while True:
        response = _attempt(method, url, base_url, timeout or settings.GITLAB_TIMEOUT, **kwargs)
        status = response.status_code
        if status != 429 and status < 500:
            gitlab_health.record_answer()
            return response
        gitlab_health.record_failure()
        wait = _retry_wait(response) if retries and status in RETRIED_STATUSES else None
        if wait is None:
            logger.warning("GitLab answered %s for %s", status, urlsplit(url).path)
            raise GitLabUnavailable(f"GitLab answered {status}", reason=f"answers {status}")
        retries -= 1
        time.sleep(wait)


def _attempt(method: str, url: str, base_url: str, timeout: float, **kwargs) -> requests.Response:
    try:
        response = session().request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        # Name the exception class only: its text may embed the URL, never the token,
        # but keep log lines uniform and short.
        logger.warning("GitLab unreachable at %s: %s", base_url, type(exc).__name__)
        GITLAB_CALLS.labels("unreachable").inc()
        gitlab_health.record_failure()
        breaker.record_failure()
        raise GitLabUnavailable(f"GitLab at {base_url} is unreachable",
                                reason=f"unreachable ({type(exc).__name__})") from None  # fmt: skip
    GITLAB_CALLS.labels(str(response.status_code)).inc()
    breaker.record_answer()
    return response


def _retry_wait(response: requests.Response) -> float | None:
    """Seconds to wait before asking again; None when GitLab asks for longer than we wait."""
    value = response.headers.get("Retry-After", "").strip()
    wait = float(value) if value.isdecimal() else RETRY_WAIT
    return wait if wait <= RETRY_WAIT_LIMIT else None


@dataclass(frozen=True)
class GitLabUser:
    id: int
    username: str
    bot: bool = False
    # GitLab shows `is_admin` to administrators only: an administrator's token sees every
    # project, so its 404 means "deleted", not "hidden from me".
    is_admin: bool = False


@dataclass(frozen=True)
class GitLabProject:
    id: int
    path_with_namespace: str
    name: str = ""
    web_url: str = ""
    visibility: str = "private"
    # GitLab shows the ML features' levels to signed-in callers only; "enabled" is its default.
    model_experiments_access_level: str = "enabled"
    model_registry_access_level: str = "enabled"
    archived: bool = False
    topics: list[str] = field(default_factory=list)
    # max(project_access, group_access); 0 when GitLab reported neither (see members/all).
    access_level: int = 0
    # Which answer gave the level (models.MembershipSource): "project", "group", "shared";
    # "" for no access.
    source: str = ""


@dataclass(frozen=True)
class GitLabJob:
    """A CI job, as GET /job describes it to the job's own token."""

    id: int
    status: str
    project_id: int
    pipeline_id: int
    user: GitLabUser
    web_url: str = ""


def _level(permissions: dict, key: str) -> int:
    """project_access or group_access from `permissions` of GET /projects/:id; null = 0."""
    return int((permissions.get(key) or {}).get("access_level") or 0)


class GitLabClient:
    """Calls GitLab's REST API on behalf of one token."""

    def __init__(
        self,
        token: str,
        base_url: str | None = None,
        timeout: float | None = None,
        *,
        job_token: bool = False,
    ):
        # GitLab takes a CI job token only in the JOB-TOKEN header.
        self._headers = {"JOB-TOKEN": token} if job_token else {"Authorization": f"Bearer {token}"}
        self._base_url = (base_url or settings.GITLAB_URL).rstrip("/")
        self._timeout = timeout if timeout is not None else settings.GITLAB_TIMEOUT

    def _get(self, path: str) -> dict | None:
        """GET an API path; None on 404, the JSON body on 200, an exception otherwise."""
        response = self._send(f"{self._base_url}/api/v4{path}")
        if response is None:
            return None
        body = _json_or_empty(response)
        if not body:
            raise GitLabUnavailable("GitLab answered with a body that is not a JSON object")
        return body

    def _send(self, url: str) -> requests.Response | None:
        """GET a URL; None on 404, the response on 200, an exception otherwise."""
        response = send("GET", url, headers=self._headers, timeout=self._timeout)
        if response.status_code == 404:
            return None
        if response.status_code == 401:
            raise TokenRejected("GitLab rejected the token (unknown, expired or revoked)")
        if response.status_code == 403:
            body = _json_or_empty(response)
            if body.get("error") == "insufficient_scope":
                raise TokenScopeTooNarrow("the token needs the read_api scope")
            raise TokenRejected("GitLab refused the token")
        if response.status_code != 200:
            raise GitLabUnavailable(f"GitLab answered an unexpected {response.status_code}")
        return response

    def current_user(self) -> GitLabUser:
        """The token's user; raises TokenRejected when GitLab does not know the token."""
        body = self._get("/user")
        if body is None:
            raise TokenRejected("GitLab does not know this token")
        return GitLabUser(id=int(body["id"]), username=body["username"], bot=bool(body.get("bot")),
                          is_admin=body.get("is_admin") is True)  # fmt: skip

    def check_read_api(self) -> None:
        """One project of the token's (a read_api route): raises TokenScopeTooNarrow when the
        token lacks the scope, TokenRejected when GitLab does not know it."""
        self._send(f"{self._base_url}/api/v4/projects?membership=true&per_page=1&simple=true")

    def project(self, id_or_path: int | str, user_id: int) -> GitLabProject | None:
        """The project as this token sees it, with the user's effective access level.

        None when GitLab answers 404 (no such project, or not visible to this token). When
        GitLab reports neither project nor group access (shared groups, public projects,
        admins), the exact level comes from members/all.
        """
        body = self._get(f"/projects/{quote(str(id_or_path), safe='')}")
        if body is None:
            return None
        permissions = body.get("permissions") or {}
        direct, inherited = (
            _level(permissions, "project_access"),
            _level(permissions, "group_access"),
        )
        if direct or inherited:
            level, source = max(direct, inherited), "project" if direct >= inherited else "group"
        else:
            level = self.member_level(int(body["id"]), user_id)
            source = "shared" if level else ""
        return _project_from(body, level, source)

    def project_metadata(self, id_or_path: int | str) -> GitLabProject | None:
        """The project without anyone's level (for the service token); None on 404."""
        body = self._get(f"/projects/{quote(str(id_or_path), safe='')}")
        return None if body is None else _project_from(body, 0, "")

    def membership(self, project_id: int, project_path: str, user_id: int) -> tuple[int, str]:
        """(level, source) of any user in a project, asked with an administrator's token.

        members/all gives the level; the direct member list, then the project's namespace
        (as a group, with its ancestors), tell whether it is direct, inherited or shared.
        """
        level = self.member_level(project_id, user_id)
        if level == 0:
            return 0, ""
        direct = self._get(f"/projects/{project_id}/members/{user_id}") or {}
        if int(direct.get("access_level") or 0) >= level:
            return level, "project"
        namespace = quote(project_path.rpartition("/")[0], safe="")
        group = self._get(f"/groups/{namespace}/members/all/{user_id}") or {}
        if int(group.get("access_level") or 0) >= level:
            return level, "group"
        return level, "shared"

    def current_job(self) -> GitLabJob:
        """The CI job behind a job token (GET /job); GitLab knows it only while it runs."""
        body = self._get("/job")
        if body is None:
            raise TokenRejected("GitLab does not know this job token")
        try:
            user = body["user"]
            return GitLabJob(
                id=int(body["id"]),
                status=str(body.get("status") or ""),
                project_id=int(body["pipeline"]["project_id"]),
                pipeline_id=int(body["pipeline"]["id"]),
                user=GitLabUser(int(user["id"]), user["username"], bool(user.get("bot"))),
                web_url=body.get("web_url") or "",
            )
        except (KeyError, TypeError, ValueError):
            raise TokenRejected("GitLab describes no pipeline or user for this job token")

    def member_level(self, project_id: int, user_id: int) -> int:
        """Highest level of the user in the project, direct, inherited or shared; 0 if none."""
        body = self._get(f"/projects/{project_id}/members/all/{user_id}")
        if body is None:
            return 0
        return int(body.get("access_level") or 0)

    def member_projects(self, user_id: int) -> list[GitLabProject]:
        """Every project where the user has Guest or more (direct, inherited or shared),
        following GitLab's keyset pages (the `Link: rel="next"` header) to the end."""
        url = (
            f"{self._base_url}/api/v4/projects?membership=true&min_access_level=10"
            "&order_by=id&sort=asc&pagination=keyset&per_page=100"
        )
        projects = []
        while url:
            response = self._send(url)
            page = _json_or_empty_list(response) if response is not None else []
            for body in page:
                permissions = body.get("permissions") or {}
                direct = _level(permissions, "project_access")
                inherited = _level(permissions, "group_access")
                level = max(direct, inherited)
                if level == 0:
                    # Shared-group access shows as none here, as on GET /projects/:id.
                    level = self.member_level(int(body["id"]), user_id)
                projects.append(_project_from(body, level, ""))
            url = response.links.get("next", {}).get("url") if response is not None else None
        return projects


def unreachable_reason(timeout: float | None = None) -> str | None:
    """None when GITLAB_URL answers like a GitLab (GET /api/v4/version without a token: 200 or
    401); otherwise why not, in a few words. For `serve` and /readyz: no token is sent."""
    try:
        response = send("GET", f"{settings.GITLAB_URL}/api/v4/version", timeout=timeout)
    except GitLabUnavailable as exc:
        return exc.reason
    if response.status_code not in (200, 401):
        return f"answers {response.status_code} to /api/v4/version: not a GitLab?"
    return None


def _project_from(body: dict, level: int, source: str) -> GitLabProject:
    return GitLabProject(
        id=int(body["id"]),
        path_with_namespace=body["path_with_namespace"],
        name=body.get("name") or "",
        web_url=body.get("web_url") or "",
        visibility=body.get("visibility") or "private",
        model_experiments_access_level=body.get("model_experiments_access_level") or "enabled",
        model_registry_access_level=body.get("model_registry_access_level") or "enabled",
        archived=bool(body.get("archived")),
        topics=list(body.get("topics") or []),
        access_level=level,
        source=source,
    )


def _json_or_empty_list(response: requests.Response) -> list[dict]:
    try:
        body = response.json()
    except ValueError:
        raise GitLabUnavailable("GitLab answered with a body that is not a JSON list") from None
    if not isinstance(body, list):
        raise GitLabUnavailable("GitLab answered with a body that is not a JSON list")
    return [item for item in body if isinstance(item, dict)]


@dataclass(frozen=True)
class OAuthToken:
    """GitLab's answer to an OAuth token request."""

    access_token: str
    refresh_token: str
    expires_in: int
    created_at: int


def refresh_oauth_token(refresh_token: str) -> OAuthToken:
    """Trade a refresh token for a new token pair. GitLab rotates both: the old refresh token
    dies, so callers must serialise refreshes of one login (projects/oauth.py does).

    Raises TokenRejected when GitLab refuses the refresh token (expired, revoked, already
    used), GitLabUnavailable when it cannot answer.
    """
    # A POST: never retried, as GitLab may have rotated the pair already.
    response = send(
        "POST",
        f"{settings.GITLAB_URL}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": settings.GITLAB_OAUTH_CLIENT_ID,
            "client_secret": settings.GITLAB_OAUTH_CLIENT_SECRET,
        },
        headers={"Accept": "application/json"},
    )
    if response.status_code in (400, 401):
        # invalid_grant: the refresh token expired, was revoked or was already used.
        raise TokenRejected("GitLab refused the refresh token")
    if response.status_code != 200:
        raise GitLabUnavailable(f"GitLab answered an unexpected {response.status_code}")
    body = _json_or_empty(response)
    try:
        return OAuthToken(
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]),
            expires_in=int(body.get("expires_in") or 7200),
            created_at=int(body.get("created_at") or time.time()),
        )
    except (KeyError, TypeError, ValueError):
        raise GitLabUnavailable("GitLab answered a token refresh without a token pair") from None


def _json_or_empty(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def signing_keys_url() -> str:
    """Where GitLab publishes the keys it signs CI id_tokens with: the `jwks_uri` of its OpenID
    discovery document. Raises GitLabUnavailable when GitLab does not say."""
    response = send("GET", f"{settings.GITLAB_URL}/.well-known/openid-configuration")
    uri = _json_or_empty(response).get("jwks_uri") if response.ok else None
    if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
        raise GitLabUnavailable(
            f"GitLab's OpenID discovery document answered {response.status_code} without a "
            "jwks_uri",
            reason="no jwks_uri in /.well-known/openid-configuration",
        )
    return uri


def service_client() -> GitLabClient | None:
    """A client with the service's own GitLab token, or None when none is configured."""
    token = settings.GITLAB_SERVICE_TOKEN
    return GitLabClient(token) if token else None
