"""The one module that talks to GitLab: typed answers in, one exception family out."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import quote

import requests
from django.conf import settings

logger = logging.getLogger(__name__)


class GitLabError(Exception):
    """GitLab did not give a usable answer."""


class TokenRejected(GitLabError):
    """GitLab does not accept the token (unknown, expired or revoked)."""


class TokenScopeTooNarrow(TokenRejected):
    """The token is valid but lacks the `read_api` scope."""


class GitLabUnavailable(GitLabError):
    """GitLab is unreachable, timed out, rate limited us or answered 5xx."""


@dataclass(frozen=True)
class GitLabUser:
    id: int
    username: str
    bot: bool = False


@dataclass(frozen=True)
class GitLabProject:
    id: int
    path_with_namespace: str
    name: str = ""
    web_url: str = ""
    visibility: str = "private"
    archived: bool = False
    topics: list[str] = field(default_factory=list)
    # max(project_access, group_access); 0 when GitLab reported neither (see members/all).
    access_level: int = 0


def _access_level(permissions: dict | None) -> int:
    """Effective level from `permissions` of GET /projects/:id: max of the two, null = 0."""
    permissions = permissions or {}
    levels = [
        (permissions.get(key) or {}).get("access_level") or 0
        for key in ("project_access", "group_access")
    ]
    return max(levels)


class GitLabClient:
    """Calls GitLab's REST API on behalf of one token."""

    def __init__(self, token: str, base_url: str | None = None, timeout: float | None = None):
        self._token = token
        self._base_url = (base_url or settings.GITLAB_URL).rstrip("/")
        self._timeout = timeout if timeout is not None else settings.GITLAB_TIMEOUT

    def _get(self, path: str) -> dict | None:
        """GET an API path; None on 404, the JSON body on 200, an exception otherwise."""
        url = f"{self._base_url}/api/v4{path}"
        try:
            response = requests.get(
                url, headers={"Authorization": f"Bearer {self._token}"}, timeout=self._timeout
            )
        except requests.RequestException as exc:
            # Name the exception class only: its text may embed the URL, never the token,
            # but keep log lines uniform and short.
            logger.warning("GitLab unreachable at %s: %s", self._base_url, type(exc).__name__)
            raise GitLabUnavailable(f"GitLab at {self._base_url} is unreachable") from None
        if response.status_code == 404:
            return None
        if response.status_code == 401:
            raise TokenRejected("GitLab rejected the token (unknown, expired or revoked)")
        if response.status_code == 403:
            body = _json_or_empty(response)
            if body.get("error") == "insufficient_scope":
                raise TokenScopeTooNarrow("the token needs the read_api scope")
            raise TokenRejected("GitLab refused the token")
        if response.status_code == 429 or response.status_code >= 500:
            logger.warning("GitLab answered %s for %s", response.status_code, path.split("?")[0])
            raise GitLabUnavailable(f"GitLab answered {response.status_code}")
        if response.status_code != 200:
            raise GitLabUnavailable(f"GitLab answered an unexpected {response.status_code}")
        body = _json_or_empty(response)
        if not body:
            raise GitLabUnavailable("GitLab answered with a body that is not a JSON object")
        return body

    def current_user(self) -> GitLabUser:
        """The token's user; raises TokenRejected when GitLab does not know the token."""
        body = self._get("/user")
        if body is None:
            raise TokenRejected("GitLab does not know this token")
        return GitLabUser(id=int(body["id"]), username=body["username"], bot=bool(body.get("bot")))

    def project(self, id_or_path: int | str, user_id: int) -> GitLabProject | None:
        """The project as this token sees it, with the user's effective access level.

        None when GitLab answers 404 (no such project, or not visible to this token). When
        GitLab reports neither project nor group access (shared groups, public projects,
        admins), the exact level comes from members/all.
        """
        body = self._get(f"/projects/{quote(str(id_or_path), safe='')}")
        if body is None:
            return None
        level = _access_level(body.get("permissions"))
        if level == 0:
            level = self.member_level(int(body["id"]), user_id)
        return GitLabProject(
            id=int(body["id"]),
            path_with_namespace=body["path_with_namespace"],
            name=body.get("name") or "",
            web_url=body.get("web_url") or "",
            visibility=body.get("visibility") or "private",
            archived=bool(body.get("archived")),
            topics=list(body.get("topics") or []),
            access_level=level,
        )

    def member_level(self, project_id: int, user_id: int) -> int:
        """Highest level of the user in the project, direct, inherited or shared; 0 if none."""
        body = self._get(f"/projects/{project_id}/members/all/{user_id}")
        if body is None:
            return 0
        return int(body.get("access_level") or 0)


def _json_or_empty(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
