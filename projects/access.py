"""Who is this token, and what may it do in a project: the membership cache before GitLab."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from projects import gitlab, jobs
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
from sharinghub_mlflow.observability import CACHE_LOOKUPS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectAccess:
    """A user's effective rights in one project."""

    project: GitLabProject
    user: GitLabUser
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
class Credential:
    """A GitLab token as the service knows it, kept in memory for one request only."""

    token: str = field(repr=False)
    digest: str
    user: GitLabUser
    # Set for a CI job token: the job acts in its own project only (jobs.py).
    job: CIJob | None = None
    # Whether GitLab has let this very token use a read_api route (TokenFingerprint.reads_api).
    reads_api: bool = False


def credential_for(
    token: str, before_asking_gitlab: Callable[[], None] = lambda: None
) -> Credential:
    """The credential behind a token, from the fingerprint cache or GitLab.

    `before_asking_gitlab` runs when the token is unknown (or its answer expired) and GitLab
    is about to be asked: it may refuse by raising (throttling unknown credentials). Raises
    gitlab.TokenRejected (also when a recent answer said so), TokenScopeTooNarrow or
    GitLabUnavailable (when GitLab cannot answer and no answer within the outage grace is kept).
    """
    digest = TokenFingerprint.digest_of(token)
    # Not select_related("job"): the join costs every request; a CI job is loaded (one more
    # query) only for the job tokens that have one.
    fingerprint = unique(TokenFingerprint.objects.select_related("user").filter(digest=digest))
    if fingerprint is not None and fingerprint.expires_at > timezone.now():
        return _credential_from(token, fingerprint)
    before_asking_gitlab()
    try:
        return _ask_gitlab_whose(token, digest)
    except gitlab.GitLabUnavailable:
        if fingerprint is None or fingerprint.user is None:
            raise
        if not within_outage_grace(fingerprint.fetched_at):
            raise
        logger.warning(
            "GitLab cannot answer: trusting token %s… of %s, checked %s (GITLAB_OUTAGE_GRACE)",
            digest[:12], fingerprint.user, fingerprint.fetched_at.isoformat(timespec="seconds"),
        )  # fmt: skip
        return _credential_from(token, fingerprint)


def unique(queryset: QuerySet) -> Model | None:
    """The row of a lookup by unique columns, or None; unlike first(), without an ORDER BY to
    build and run on every request."""
    return next(iter(queryset[:1]), None)


def _credential_from(token: str, fingerprint: TokenFingerprint) -> Credential:
    if fingerprint.reads_api is False:
        raise gitlab.TokenScopeTooNarrow("GitLab refused this token the read_api scope")
    if fingerprint.user is None:
        raise gitlab.TokenRejected("GitLab rejected this token moments ago")
    job = fingerprint.job if fingerprint.job_id is not None else None
    return Credential(token, fingerprint.digest, fingerprint.user, job, bool(fingerprint.reads_api))


def _ask_gitlab_whose(token: str, digest: str) -> Credential:
    try:
        if jobs.looks_like_job_token(token):
            return jobs.remember_job(token, digest)
        try:
            found = gitlab.GitLabClient(token).current_user()
        except gitlab.TokenScopeTooNarrow:
            raise
        except gitlab.TokenRejected as rejected:
            # A job token whose prefix is not glcbt- (configurable on self-managed GitLab) is
            # known only to GET /job.
            if not jobs.may_be_job_token(token):
                raise
            try:
                return jobs.remember_job(token, digest)
            except gitlab.GitLabError:
                raise rejected from None
    except gitlab.TokenRejected:
        remember_fingerprint(digest, None, positive=False)
        raise
    user, _ = GitLabUser.objects.update_or_create(
        id=found.id,
        defaults={"username": found.username, "bot": found.bot, "last_seen": timezone.now()},
    )
    fingerprint = remember_fingerprint(digest, user, positive=True)
    return Credential(token, digest, user, reads_api=bool(fingerprint.reads_api))


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


def _unknown_path_key(user: GitLabUser, path: str) -> str:
    return "no-project:" + hashlib.sha256(f"{user.id}:{path}".encode()).hexdigest()


def access_to(credential: Credential, path: str) -> ProjectAccess | None:
    """The credential's access to the project at `path`, or None when it does not exist for
    its user.

    While a cached answer is fresh, no GitLab call is made, but only for a credential that has
    proved its read_api scope: any other is asked of GitLab itself first. Raises
    GitLabUnavailable when GitLab cannot answer and no membership within the outage grace is
    cached, TokenScopeTooNarrow when GitLab refuses the token the read_api scope. A CI job
    token reaches its own project only (see jobs.py).
    """
    if credential.job is not None:
        return jobs.job_access(credential.job, credential.user, path)
    if not credential.reads_api:
        return _prove_scope_and_fetch(credential, path)
    user = credential.user
    membership = unique(
        Membership.objects.select_related("project").filter(user=user, project__path=path)
    )
    if membership is not None and membership.is_fresh:
        CACHE_LOOKUPS.labels("hit").inc()
        return ProjectAccess(membership.project, user, membership.access_level)
    if cache.get(_unknown_path_key(user, path)):
        CACHE_LOOKUPS.labels("negative_hit").inc()
        return None
    CACHE_LOOKUPS.labels("miss").inc()
    try:
        return _fetch_access(credential, path)
    except gitlab.GitLabUnavailable:
        if not serves_during_outage(membership):
            raise
        return ProjectAccess(membership.project, user, membership.access_level)


def _prove_scope_and_fetch(credential: Credential, path: str) -> ProjectAccess | None:
    """Ask GitLab with the token itself: its answer, found or not, proves the read_api scope."""
    CACHE_LOOKUPS.labels("unproven_token").inc()
    try:
        found = _fetch_access(credential, path)
    except gitlab.TokenScopeTooNarrow:
        remember_scope(credential, reads_api=False)
        raise
    remember_scope(credential, reads_api=True)
    return found


def _fetch_access(credential: Credential, path: str) -> ProjectAccess | None:
    """GitLab's answer for the project at `path`, remembered."""
    user = credential.user
    found = gitlab.GitLabClient(credential.token).project(path, user_id=user.id)
    if found is None:
        cache.set(_unknown_path_key(user, path), True, settings.MEMBERSHIP_NEGATIVE_CACHE_TTL)
        return None
    project = remember_project(found)
    membership = remember_membership(user, project, found.access_level, found.source)
    return ProjectAccess(project, user, membership.access_level)


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
                "archived": found.archived,
                "topics": found.topics,
                "last_seen": timezone.now(),
            },
        )
    return project


def free_path(path: str, for_id: int) -> None:
    """Rename away any other project row holding `path`: paths are unique, ids are the truth.

    A renamed project may have left its old path on another id. Call inside a transaction.
    """
    for other in GitLabProject.objects.filter(path=path).exclude(id=for_id):
        other.path = f"{path}#moved-{other.id}"
        other.save(update_fields=["path"])


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


def is_served(project: GitLabProject | gitlab.GitLabProject) -> bool:
    """Whether the service is open to a project: it carries every GITLAB_MANDATORY_TOPICS.

    A project that is not served does not exist here, for everyone: 404, as a missing one.
    """
    return set(settings.GITLAB_MANDATORY_TOPICS) <= set(project.topics or ())
