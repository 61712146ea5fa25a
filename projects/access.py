"""Who is this token, and what may it do in a project: the membership cache before GitLab."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from projects import gitlab
from projects.models import (
    READ_LEVEL,
    WRITE_LEVEL,
    AccessLevel,
    GitLabProject,
    GitLabUser,
    Membership,
    TokenFingerprint,
)


@dataclass(frozen=True)
class ProjectAccess:
    """A user's effective rights in one project."""

    project: GitLabProject
    user: GitLabUser
    level: int

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


def user_for_token(token: str) -> GitLabUser:
    """The GitLab user behind a token, from the fingerprint cache or GitLab.

    Raises gitlab.TokenRejected (also when a recent answer said so), TokenScopeTooNarrow or
    GitLabUnavailable.
    """
    digest = TokenFingerprint.digest_of(token)
    fingerprint = (
        TokenFingerprint.objects.select_related("user")
        .filter(digest=digest, expires_at__gt=timezone.now())
        .first()
    )
    if fingerprint is not None:
        if fingerprint.user is None:
            raise gitlab.TokenRejected("GitLab rejected this token moments ago")
        return fingerprint.user
    try:
        found = gitlab.GitLabClient(token).current_user()
    except gitlab.TokenRejected:
        TokenFingerprint.objects.update_or_create(
            digest=digest, defaults={"user": None, "expires_at": _expiry(positive=False)}
        )
        raise
    user, _ = GitLabUser.objects.update_or_create(
        id=found.id,
        defaults={"username": found.username, "bot": found.bot, "last_seen": timezone.now()},
    )
    TokenFingerprint.objects.update_or_create(
        digest=digest, defaults={"user": user, "expires_at": _expiry(positive=True)}
    )
    return user


def _unknown_path_key(user: GitLabUser, path: str) -> str:
    return "no-project:" + hashlib.sha256(f"{user.id}:{path}".encode()).hexdigest()


def access_to(token: str, user: GitLabUser, path: str) -> ProjectAccess | None:
    """The user's access to the project at `path`, or None when it does not exist for them.

    While a cached answer is fresh, no GitLab call is made. Raises GitLabUnavailable when
    GitLab cannot answer and nothing fresh is cached.
    """
    membership = (
        Membership.objects.select_related("project")
        .filter(user=user, project__path=path, expires_at__gt=timezone.now())
        .first()
    )
    if membership is not None:
        return ProjectAccess(membership.project, user, membership.access_level)
    if cache.get(_unknown_path_key(user, path)):
        return None
    found = gitlab.GitLabClient(token).project(path, user_id=user.id)
    if found is None:
        cache.set(_unknown_path_key(user, path), True, settings.MEMBERSHIP_NEGATIVE_CACHE_TTL)
        return None
    project = remember_project(found)
    membership = _remember_membership(user, project, found.access_level)
    return ProjectAccess(project, user, membership.access_level)


def remember_project(found: gitlab.GitLabProject) -> GitLabProject:
    """Store GitLab's view of a project; a path now used by this id is freed from stale rows."""
    with transaction.atomic():
        # A renamed project may have left its old path on another id: paths are unique.
        stale = GitLabProject.objects.filter(path=found.path_with_namespace).exclude(id=found.id)
        for other in stale:
            other.path = f"{found.path_with_namespace}#moved-{other.id}"
            other.save(update_fields=["path"])
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


def _remember_membership(user: GitLabUser, project: GitLabProject, level: int) -> Membership:
    defaults = {
        "access_level": level,
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
