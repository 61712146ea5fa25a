"""Who is this token, and what may it do in a project: the membership cache before GitLab."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from projects import gitlab, jobs, memo, visibility
from projects.metrics import CACHE_LOOKUPS
from projects.models import GitLabProject, GitLabUser, Membership, TokenFingerprint
from projects.records import (
    Credential,
    ProjectAccess,
    remember_fingerprint,
    remember_membership,
    remember_project,
    remember_scope,
    serves_during_outage,
    unique,
    within_outage_grace,
)

logger = logging.getLogger(__name__)
Answer = TypeVar("Answer")  # what GitLab answered a call made with a token


def credential_for(
    token: str, before_asking_gitlab: Callable[[], None] = lambda: None, path: str | None = None
) -> Credential:
    """The credential behind a token, from the fingerprint cache or GitLab; with the access to
    the project at `path` when both are cached and fresh (no query when memoized, see memo.py;
    else one, see cached_in_one_query).

    `before_asking_gitlab` runs when the token is unknown (never seen, or refused before) and
    GitLab is about to be asked: it may refuse by raising (throttling unknown credentials). Raises
    gitlab.TokenRejected (also when a recent answer said so), TokenScopeTooNarrow or
    GitLabUnavailable (when GitLab cannot answer and no answer within the outage grace is kept).
    """
    digest = TokenFingerprint.digest_of(token)
    if path is not None and (known := _cached(token, digest, path)) is not None:
        return known
    # Not select_related("job"): the join costs every request; a CI job is loaded (one more
    # query) only for the job tokens that have one.
    fingerprint = unique(TokenFingerprint.objects.select_related("user").filter(digest=digest))
    if fingerprint is not None and fingerprint.expires_at > timezone.now():
        return _credential_from(token, fingerprint)
    if fingerprint is None or fingerprint.user is None:
        # A token never seen, or refused before; renewing a known valid one is not throttled.
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


def _cached(token: str, digest: str, path: str) -> Credential | None:
    """A cached member's answer: from this process's memo, else from the database's one query
    (then memoized)."""
    known, generation = memo.recall(digest, path)
    if known is not None:
        return Credential(token, digest, known.user, reads_api=True, known=known)
    found = cached_in_one_query(token, digest, path)
    if found is None:
        return None
    credential, expires = found
    memo.keep(digest, path, credential.known, expires, generation)
    return credential


def _cached_sql() -> str:
    """Fingerprint → user → membership → project, on token digest and project path, both
    fresh; a token that has proved read_api and is not a CI job's (those take their own way)."""
    models = (TokenFingerprint, GitLabUser, Membership, GitLabProject)
    f, u, m, p = (connection.ops.quote_name(model._meta.db_table) for model in models)
    return (
        f"SELECT p.*, u.id AS caller_id, u.username AS caller_username, u.bot AS caller_bot, "
        f"m.access_level AS caller_level, CASE WHEN f.expires_at < m.expires_at "
        f"THEN f.expires_at ELSE m.expires_at END AS caller_until "
        f"FROM {f} f JOIN {u} u ON u.id = f.user_id JOIN {m} m ON m.user_id = u.id "
        f"JOIN {p} p ON p.id = m.project_id "
        "WHERE f.digest = %s AND p.path = %s AND f.expires_at > %s AND m.expires_at > %s "
        "AND f.reads_api = %s AND f.job_id IS NULL"
    )


def cached_in_one_query(
    token: str, digest: str, path: str
) -> tuple[Credential, datetime | str] | None:
    """The credential and its access to the project at `path` in one raw query (no SQL to
    compile: the two ORM lookups it replaces cost ~1 ms of CPU each), when the token's
    fingerprint and the membership are cached and fresh, with when the first of them expires
    (as the database gives it); None otherwise."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    rows = GitLabProject.objects.raw(_cached_sql(), [digest, path, now, now, True])
    project = next(iter(rows), None)
    if project is None:
        return None
    user = GitLabUser.from_db(
        connection.alias,
        ["id", "username", "bot"],
        [project.caller_id, project.caller_username, bool(project.caller_bot)],
    )
    known = ProjectAccess(project, user, project.caller_level)
    return Credential(token, digest, user, reads_api=True, known=known), project.caller_until


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


def prove_read_api(credential: Credential) -> None:
    """Raises TokenScopeTooNarrow unless the token has shown GitLab its read_api scope (asked
    once, then remembered with its fingerprint): what the API would find at its first read."""
    if credential.reads_api or credential.job is not None:
        return
    _proving_scope(credential, gitlab.GitLabClient(credential.token).check_read_api)


def _proving_scope(credential: Credential, ask: Callable[[], Answer]) -> Answer:
    """GitLab's answer to `ask` (a call made with the token itself): a refusal for its scope
    disproves read_api, any answer proves it; either is remembered with its fingerprint."""
    try:
        answer = ask()
    except gitlab.TokenScopeTooNarrow:
        remember_scope(credential, reads_api=False)
        raise
    remember_scope(credential, reads_api=True)
    return answer


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
    if credential.id_token is not None:
        known = credential.known  # its own project, as the signed token says (idtokens.py)
        return known if known is not None and known.project.path == path else None
    if not credential.reads_api:
        return _prove_scope_and_fetch(credential, path)
    if credential.known is not None and credential.known.project.path == path:
        CACHE_LOOKUPS.labels("hit").inc()
        return credential.known
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
    return _proving_scope(credential, lambda: _fetch_access(credential, path))


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


def _anonymous_key(path: str) -> str:
    return "no-public-project:" + hashlib.sha256(path.encode()).hexdigest()


def public_access_to(
    path: str, before_asking_gitlab: Callable[[], None] = lambda: None
) -> ProjectAccess | None:
    """An anonymous caller's access to the project at `path` (level 0, no user), or None when
    GitLab's service token finds no such project. The project's row serves while fresh
    (MEMBERSHIP_CACHE_TTL); else GitLab is asked with GITLAB_SERVICE_TOKEN (visibility.
    anonymous_reads), after `before_asking_gitlab` (which may refuse by raising: throttles)."""
    project = unique(GitLabProject.objects.filter(path=path))
    fresh = timezone.now() - timedelta(seconds=settings.MEMBERSHIP_CACHE_TTL)
    if project is not None and project.last_seen > fresh:
        return ProjectAccess(project, None, 0)
    if cache.get(_anonymous_key(path)):
        return None
    before_asking_gitlab()
    try:
        found = gitlab.GitLabClient(settings.GITLAB_SERVICE_TOKEN).project_metadata(path)
    except gitlab.GitLabUnavailable:
        if project is None or not within_outage_grace(project.last_seen):
            raise
        return ProjectAccess(project, None, 0)
    if found is None:
        cache.set(_anonymous_key(path), True, settings.MEMBERSHIP_NEGATIVE_CACHE_TTL)
        return None
    return ProjectAccess(remember_project(found), None, 0)


def is_visible(project_access: ProjectAccess | None) -> bool:
    """Whether the caller sees the project here (its connect page, its MLflow server): a served
    project of which it reads a feature (Guest or more, or anyone where GitLab says so:
    visibility.py). Anything else answers as a project that does not exist."""
    return (
        project_access is not None
        and is_served(project_access.project)
        and visibility.may_read(project_access.project, project_access.level)
    )


def is_served(project: GitLabProject | gitlab.GitLabProject) -> bool:
    """Whether the service is open to a project: it carries every GITLAB_MANDATORY_TOPICS.

    A project that is not served does not exist here, for everyone: 404, as a missing one.
    So is a project GitLab deleted (orphaned), until GitLab answers for it again.
    """
    if getattr(project, "orphaned_at", None) is not None:
        return False
    return set(settings.GITLAB_MANDATORY_TOPICS) <= set(project.topics or ())
