"""Keeping the membership cache true: refresh from GitLab, invalidate, prune, follow moves."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from projects import gitlab, memo, records
from projects.models import (
    READ_LEVEL,
    CIJob,
    GitLabProject,
    Membership,
    TokenFingerprint,
    WebhookDelivery,
)


class ServiceTokenMissing(Exception):
    """Refreshing needs GITLAB_SERVICE_TOKEN: the service keeps no user's token."""


@dataclass
class RefreshSummary:
    refreshed: int = 0
    changed: int = 0
    forgotten: int = 0
    orphaned: int = 0
    unsure: int = 0

    def __str__(self) -> str:
        text = (
            f"{self.refreshed} memberships refreshed from GitLab ({self.changed} changed), "
            f"{self.forgotten} forgotten (project gone or not visible to the service token), "
            f"{self.orphaned} projects newly orphaned"
        )
        if self.unsure:
            text += (
                f"; {self.unsure} projects not found were not orphaned: GITLAB_SERVICE_TOKEN "
                "is no administrator's, so GitLab may only hide them from it"
            )
        return text


def paced(per_second: float) -> Callable[[], None]:
    """A function that sleeps so that it returns at most `per_second` times a second."""
    interval = 1.0 / per_second
    next_at = [time.monotonic()]

    def pace() -> None:
        delay = next_at[0] - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        next_at[0] = max(next_at[0], time.monotonic()) + interval

    return pace


def refresh(
    memberships: QuerySet[Membership],
    projects: QuerySet[GitLabProject] | None = None,
    *,
    pace: Callable[[], None] = lambda: None,
    progress: Callable[[Membership], None] = lambda membership: None,
) -> RefreshSummary:
    """Ask GitLab again, with the service token, for these memberships (and these projects).

    Each project costs one call (GET /projects/:id: path, archived...), each membership one to
    three (members/all, then the direct and group member lists to name its source). `pace` is
    called before each. Raises ServiceTokenMissing, or GitLab's errors as they come.
    """
    client = gitlab.service_client()
    if client is None:
        raise ServiceTokenMissing(
            "Set GITLAB_SERVICE_TOKEN to an administrator's GitLab token with read_api to "
            "refresh from GitLab; nothing was refreshed."
        )
    by_project: dict[int, list[Membership]] = defaultdict(list)
    for membership in memberships.select_related("user"):
        by_project[membership.project_id].append(membership)
    project_ids = set(by_project)
    if projects is not None:
        project_ids.update(projects.values_list("id", flat=True))
    summary = RefreshSummary()
    # Only an administrator's 404 says a project is gone; anyone else's may mean "hidden".
    pace()
    sees_every_project = client.current_user().is_admin
    for project_id in sorted(project_ids):
        pace()
        found = client.project_metadata(project_id)
        if found is None:
            _forget_project(project_id, sees_every_project, summary)
            continue
        project = records.remember_project(found)
        for membership in by_project[project_id]:
            pace()
            progress(_refresh_membership(client, project, membership, summary))
    return summary


def _forget_project(project_id: int, sees_every_project: bool, summary: RefreshSummary) -> None:
    """A project GitLab did not find: its memberships forgotten, itself orphaned if surely gone."""
    summary.forgotten += invalidate(Membership.objects.filter(project_id=project_id))
    if sees_every_project:
        summary.orphaned += orphan(project_id)
    else:
        summary.unsure += 1


def _refresh_membership(
    client: gitlab.GitLabClient,
    project: GitLabProject,
    membership: Membership,
    summary: RefreshSummary,
) -> Membership:
    """GitLab's answer for one membership, remembered and counted; no worker's memo keeps the
    old one (nor its project's old topics)."""
    level, source = client.membership(project.id, project.path, membership.user_id)
    updated = records.remember_membership(membership.user, project, level, source)
    memo.forget()
    summary.refreshed += 1
    summary.changed += level != membership.access_level
    return updated


def invalidate(memberships: QuerySet[Membership]) -> int:
    """Forget memberships: the next request asks GitLab. Deleted, not expired, so that the
    outage grace cannot serve them either; every worker's memo with them. Returns how many
    were forgotten."""
    forgotten = memberships.delete()[0]
    memo.forget()
    return forgotten


def invalidate_tokens(fingerprints: QuerySet[TokenFingerprint]) -> int:
    """Forget tokens: the next request asks GitLab whose they are. Returns how many."""
    forgotten = fingerprints.delete()[0]
    memo.forget()
    return forgotten


def orphan(project_id: int) -> int:
    """Mark a project GitLab says is gone: unreachable, its MLflow data kept until
    `purge_projects`. Returns 1 when it was not orphaned yet, else 0 (the first date stays)."""
    orphaned = GitLabProject.objects.filter(id=project_id, orphaned_at__isnull=True).update(
        orphaned_at=timezone.now()
    )
    memo.forget()
    return orphaned


def prune() -> dict[str, int]:
    """Delete what can no longer be used, even during a GitLab outage; counts by kind."""
    now = timezone.now()
    too_old = now - timedelta(seconds=settings.GITLAB_OUTAGE_GRACE)
    memberships = Membership.objects.filter(expires_at__lte=now).filter(
        Q(fetched_at__lt=too_old) | Q(access_level__lt=READ_LEVEL)
    )
    fingerprints = TokenFingerprint.objects.filter(expires_at__lte=now).filter(
        Q(fetched_at__lt=too_old) | Q(user__isnull=True)
    )
    return {
        "memberships": memberships.delete()[0],
        "token fingerprints": fingerprints.delete()[0],
        "CI jobs": CIJob.objects.filter(fingerprints__isnull=True).delete()[0],
        "webhook keys": WebhookDelivery.objects.filter(
            received_at__lt=now - WebhookDelivery.RETENTION
        ).delete()[0],
    }
