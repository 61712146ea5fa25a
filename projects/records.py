"""What the service keeps of GitLab's answers: the values a lookup returns, the writes that
remember users' tokens, projects and memberships (the membership cache's write side), and how
long a kept answer serves while GitLab cannot answer (GITLAB_OUTAGE_GRACE, logged here)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from projects import gitlab, memo
from projects.models import (
    READ_LEVEL,
    WRITE_LEVEL,
    AccessLevel,
    CIJob,
    GitLabProject,
    GitLabUser,
    Membership,
    TokenFingerprint,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectAccess:
    """A user's effective rights in one project."""

    project: GitLabProject
    user: GitLabUser | None  # None: an anonymous reader of a public project
    level: int
    # Set when a CI job token is calling: the job acts in its own project only.
    job: CIJob | None = None

    @property
    def can_read(self) -> bool:
        return self.level >= READ_LEVEL

    @property
    def can_write(self) -> bool:
        return self.level >= WRITE_LEVEL

    @property
    def role(self) -> str:
        return AccessLevel.name_of(self.level)


def _expiry(positive: bool) -> timezone.datetime:
    ttl = settings.MEMBERSHIP_CACHE_TTL if positive else settings.MEMBERSHIP_NEGATIVE_CACHE_TTL
    return timezone.now() + timedelta(seconds=ttl)


def within_outage_grace(fetched_at: timezone.datetime) -> bool:
    """Whether an answer fetched then may still be served while GitLab cannot answer."""
    return fetched_at >= timezone.now() - timedelta(seconds=settings.GITLAB_OUTAGE_GRACE)


@dataclass(frozen=True)
class IdToken:
    """What a verified GitLab CI id_token says of its job (projects/idtokens.py)."""

    project_id: int
    project_path: str
    user_id: int
    user_login: str
    level: int  # user_access_level when the job started
    job_id: int
    pipeline_id: int
    ref_protected: bool


@dataclass(frozen=True)
class Credential:
    """A GitLab token as the service knows it, kept in memory for one request only."""

    token: str = field(repr=False)
    digest: str
    user: GitLabUser
    # Set for a CI job token: the job acts in its own project only (jobs.py).
    job: CIJob | None = None
    # Whether GitLab has let this very token use a read_api route (TokenFingerprint.reads_api).
    reads_api: bool = False
    # The access to the request's project, read in the same query as the token (a memo for
    # access_to, which then makes no query of its own).
    known: ProjectAccess | None = None
    # Set for a CI id_token: `known` is then the only project it reaches (idtokens.py).
    id_token: IdToken | None = None


def unique(queryset: QuerySet) -> Model | None:
    """The row of a lookup by unique columns, or None; unlike first(), without an ORDER BY to
    build and run on every request."""
    return next(iter(queryset[:1]), None)


def remember_fingerprint(
    digest: str,
    user: GitLabUser | None,
    *,
    positive: bool,
    job: CIJob | None = None,
    reads_api: bool | None = None,
) -> TokenFingerprint:
    """Store GitLab's answer for a token; `reads_api` None keeps what was known of its scope
    (a token's scopes never change in GitLab)."""
    defaults = {
        "user": user,
        "job": job,
        "fetched_at": timezone.now(),
        "expires_at": _expiry(positive=positive),
    }
    if reads_api is not None:
        defaults["reads_api"] = reads_api
    fingerprint, _ = TokenFingerprint.objects.update_or_create(digest=digest, defaults=defaults)
    return fingerprint


def remember_scope(credential: Credential, reads_api: bool) -> None:
    """What GitLab just said of this token's read_api scope, kept with its fingerprint."""
    changes = {"reads_api": reads_api}
    if not reads_api:
        # A refusal is a negative answer: asked again after MEMBERSHIP_NEGATIVE_CACHE_TTL.
        changes["expires_at"] = _expiry(positive=False)
    TokenFingerprint.objects.filter(digest=credential.digest).update(**changes)


def serves_during_outage(membership: Membership | None) -> bool:
    """Whether a stale membership keeps working while GitLab cannot answer (and log it).

    Only members are kept on: a stale "no access" is not trusted to refuse, nor to allow.
    """
    if membership is None or membership.access_level < READ_LEVEL:
        return False
    if not within_outage_grace(membership.fetched_at):
        return False
    logger.warning(
        "GitLab cannot answer: serving %s as checked %s (GITLAB_OUTAGE_GRACE)",
        membership, membership.fetched_at.isoformat(timespec="seconds"),
    )  # fmt: skip
    return True


def remember_project(found: gitlab.GitLabProject) -> GitLabProject:
    """Store GitLab's view of a project; a path now used by this id is freed from stale rows."""
    with transaction.atomic():
        free_path(found.path_with_namespace, for_id=found.id)
        project, _ = GitLabProject.objects.update_or_create(
            id=found.id,
            defaults={
                "path": found.path_with_namespace,
                "name": found.name,
                "web_url": found.web_url,
                "visibility": found.visibility,
                "model_experiments_access_level": found.model_experiments_access_level,
                "model_registry_access_level": found.model_registry_access_level,
                "archived": found.archived,
                "topics": found.topics,
                "last_seen": timezone.now(),
                "orphaned_at": None,  # GitLab answers for it: restored, if it had been deleted
            },
        )
    return project


def free_path(path: str, for_id: int) -> None:
    """Rename away any other project row holding `path`: paths are unique, ids are the truth.

    A renamed project may have left its old path on another id. Call inside a transaction.
    No worker's memo keeps answering for the path with the other project.
    """
    for other in GitLabProject.objects.filter(path=path).exclude(id=for_id):
        other.path = f"{path}#moved-{other.id}"
        other.save(update_fields=["path"])
        memo.forget()


def remember_membership(
    user: GitLabUser, project: GitLabProject, level: int, source: str = ""
) -> Membership:
    defaults = {
        "access_level": level,
        "source": source,
        "fetched_at": timezone.now(),
        "expires_at": _expiry(positive=level >= READ_LEVEL),
    }
    try:
        membership, _ = Membership.objects.update_or_create(
            user=user, project=project, defaults=defaults
        )
    except IntegrityError:
        # Another worker stored the same pair between our read and our insert: update it.
        membership, _ = Membership.objects.update_or_create(
            user=user, project=project, defaults=defaults
        )
    return membership


def move_project(project_id: int, path: str) -> GitLabProject:
    """Record a project's new path (renamed or transferred); its rows follow its id, and no
    worker's memo answers for the old path any more."""
    with transaction.atomic():
        free_path(path, for_id=project_id)
        project, _ = GitLabProject.objects.update_or_create(id=project_id, defaults={"path": path})
        memo.forget()
    return project
