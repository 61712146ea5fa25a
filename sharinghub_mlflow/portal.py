"""The projects a logged-in user can reach, as the portal lists them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache

from mlflow_bridge.embedded.activity import activity_of
from projects import access, gitlab
from projects.models import (
    WRITE_LEVEL,
    AccessLevel,
    GitLabProject,
    ProjectUsage,
    TokenFingerprint,
)


@dataclass(frozen=True)
class Row:
    """One project of the portal, with what it holds in MLflow (None: nothing yet)."""

    project: gitlab.GitLabProject
    activity: ProjectUsage | None  # unsaved: MLflow's counts now

    @property
    def role(self) -> str:
        return AccessLevel.name_of(self.project.access_level)

    @property
    def read_only(self) -> bool:
        return self.project.access_level < WRITE_LEVEL

    @property
    def last_activity(self) -> datetime | None:
        return self.activity.last_activity if self.activity else None


def member_projects(token: str, user_id: int) -> list[gitlab.GitLabProject]:
    """GitLab's list of the user's projects (Guest or more), cached like memberships: per
    credential (by its hash), never lent to another token of the same user."""
    key = f"member-projects:{TokenFingerprint.digest_of(token)}"
    projects = cache.get(key)
    if projects is None:
        projects = gitlab.GitLabClient(token).member_projects(user_id)
        cache.set(key, projects, settings.MEMBERSHIP_CACHE_TTL)
    return projects


def rows(token: str, user_id: int, search: str = "") -> list[Row]:
    """The served projects matching `search`, most recently active first, then by path."""
    search = search.strip().lower()
    projects = [
        project
        for project in member_projects(token, user_id)
        if access.is_served(project)
        and (not search or search in project.path_with_namespace.lower())
    ]
    workspaces = {project.id: GitLabProject(id=project.id).workspace for project in projects}
    activities = activity_of(list(workspaces.values()))
    found = [Row(project, activities.get(workspaces[project.id])) for project in projects]
    found.sort(key=lambda row: row.project.path_with_namespace)
    found.sort(
        key=lambda row: row.last_activity.timestamp() if row.last_activity else 0, reverse=True
    )
    return found
