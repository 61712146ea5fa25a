"""The projects a logged-in user can reach, as the portal lists them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.timesince import timesince

from mlflow_bridge.embedded.activity import RecentRun, activity_of, recent_runs
from projects import access, gitlab
from projects.models import (
    WRITE_LEVEL,
    AccessLevel,
    GitLabProject,
    ProjectUsage,
    TokenFingerprint,
)

# Rows per portal page: a page a phone scrolls through, and a member of hundreds of projects
# pages through.
PAGE_SIZE = 50


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

    @property
    def last_activity_ago(self) -> str:
        return ago(self.last_activity) if self.last_activity else ""


@dataclass(frozen=True)
class RunRow:
    """One of the recent runs across the user's projects."""

    project: gitlab.GitLabProject
    run: RecentRun

    @property
    def url(self) -> str:
        return (f"/mlflow/{self.project.path_with_namespace}/tracking/#/experiments/"
                f"{self.run.experiment_id}/runs/{self.run.run_id}")  # fmt: skip

    @property
    def started_ago(self) -> str:
        return ago(self.run.started) if self.run.started else ""


def ago(when: datetime) -> str:
    """ "just now" within the minute, else "3 minutes ago", "2 hours ago" (the largest unit)."""
    if (timezone.now() - when).total_seconds() < 60:
        return "just now"
    return f"{timesince(when, depth=1)} ago"


def member_projects(token: str, user_id: int) -> list[gitlab.GitLabProject]:
    """GitLab's list of the user's projects (Guest or more), cached like memberships: per
    credential (by its hash), never lent to another token of the same user."""
    key = f"member-projects:{TokenFingerprint.digest_of(token)}"
    projects = cache.get(key)
    if projects is None:
        projects = gitlab.GitLabClient(token).member_projects(user_id)
        cache.set(key, projects, settings.MEMBERSHIP_CACHE_TTL)
    return projects


def served_projects(token: str, user_id: int) -> list[gitlab.GitLabProject]:
    return [project for project in member_projects(token, user_id) if access.is_served(project)]


def rows(projects: list[gitlab.GitLabProject], search: str = "") -> list[Row]:
    """The projects matching `search`: those with MLflow data first, most recently active
    first, then the others by path. One query per kind of MLflow object, however many."""
    search = search.strip().lower()
    projects = [p for p in projects if not search or search in p.path_with_namespace.lower()]
    workspaces = {project.id: GitLabProject(id=project.id).workspace for project in projects}
    activities = activity_of(list(workspaces.values()))
    found = [Row(project, activities.get(workspaces[project.id])) for project in projects]

    def order(row: Row) -> tuple:
        seen = row.last_activity.timestamp() if row.last_activity else 0.0
        return (row.activity is None, -seen, row.project.path_with_namespace)

    return sorted(found, key=order)


def recent(projects: list[gitlab.GitLabProject], limit: int = 10) -> list[RunRow]:
    """The latest runs across these projects (all of them readable: Guest or more)."""
    by_workspace = {GitLabProject(id=project.id).workspace: project for project in projects}
    return [RunRow(by_workspace[run.workspace], run)
            for run in recent_runs(list(by_workspace), limit)]  # fmt: skip
