"""What the service believes GitLab said: users, projects, memberships and token fingerprints."""

from __future__ import annotations

import hashlib

from django.db import models
from django.utils import timezone


class AccessLevel(models.IntegerChoices):
    """GitLab's `Gitlab::Access` values. Rights are decided by threshold, never by equality."""

    NO_ACCESS = 0, "No access"
    MINIMAL_ACCESS = 5, "Minimal Access"
    GUEST = 10, "Guest"
    PLANNER = 15, "Planner"
    REPORTER = 20, "Reporter"
    SECURITY_MANAGER = 25, "Security Manager"
    DEVELOPER = 30, "Developer"
    MAINTAINER = 40, "Maintainer"
    OWNER = 50, "Owner"

    @classmethod
    def name_of(cls, level: int) -> str:
        """Readable role name, also for levels GitLab adds after this list was written."""
        try:
            return cls(level).label
        except ValueError:
            below = [member for member in cls if member.value <= level]
            return below[-1].label if below else "No access"


READ_LEVEL = AccessLevel.GUEST
WRITE_LEVEL = AccessLevel.DEVELOPER


class GitLabUser(models.Model):
    id = models.BigIntegerField(primary_key=True, help_text="GitLab user id")
    username = models.CharField(max_length=255)
    bot = models.BooleanField(default=False, help_text="Project/group access token users")
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "GitLab user"

    def __str__(self) -> str:
        return self.username


class GitLabProject(models.Model):
    """A GitLab project, keyed by its immutable id; the path is only its current name."""

    id = models.BigIntegerField(primary_key=True, help_text="GitLab project id")
    path = models.CharField(max_length=1024, unique=True, help_text="path_with_namespace")
    name = models.CharField(max_length=255, blank=True)
    web_url = models.URLField(max_length=1024, blank=True)
    visibility = models.CharField(max_length=16, default="private")
    archived = models.BooleanField(default=False)
    topics = models.JSONField(default=list, blank=True)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "GitLab project"

    def __str__(self) -> str:
        return self.path

    @property
    def workspace(self) -> str:
        """The MLflow workspace holding this project's data."""
        return f"p-{self.id}"


class Membership(models.Model):
    """GitLab's answer to "which level has user U in project P", trusted until `expires_at`."""

    user = models.ForeignKey(GitLabUser, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(GitLabProject, on_delete=models.CASCADE, related_name="memberships")
    access_level = models.IntegerField(choices=AccessLevel.choices)
    fetched_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="one_membership_per_pair")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project}: {AccessLevel.name_of(self.access_level)}"

    @property
    def is_fresh(self) -> bool:
        return self.expires_at > timezone.now()


class TokenFingerprint(models.Model):
    """Which GitLab user a token belongs to, keyed by the token's SHA-256 (never the token).

    `user` is empty for a token GitLab rejected: a short-lived negative answer.
    """

    digest = models.CharField(max_length=64, primary_key=True)
    user = models.ForeignKey(
        GitLabUser, null=True, blank=True, on_delete=models.CASCADE, related_name="tokens"
    )
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.digest[:12]}… → {self.user or 'rejected'}"

    @staticmethod
    def digest_of(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
