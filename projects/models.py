"""What the service believes GitLab said: users, projects, memberships and token fingerprints."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.conf import settings
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


class MembershipSource(models.TextChoices):
    """Where GitLab's level came from: which of its answers gave it."""

    PROJECT = "project", "Project member (project_access)"
    GROUP = "group", "Group member, inherited (group_access)"
    SHARED = "shared", "Through a shared group (members/all)"


class GitLabUser(models.Model):
    id = models.BigIntegerField(primary_key=True, help_text="GitLab user id")
    username = models.CharField(max_length=255)
    bot = models.BooleanField(default=False, help_text="Project/group access token users")
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "GitLab user"

    def __str__(self) -> str:
        return self.username

    # A GitLab user authenticated by a token is the request's user (Django REST framework's
    # `request.user`), so it answers what templates and throttles ask of Django's users.
    is_authenticated = True
    is_anonymous = False

    def get_username(self) -> str:
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
    # GitLab said the project is gone (project_destroy, or 404 to the service token): its MLflow
    # data is kept, unreachable, until `purge_projects`; GitLab answering for it again clears it.
    orphaned_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = "GitLab project"

    def __str__(self) -> str:
        return self.path

    @property
    def workspace(self) -> str:
        """The MLflow workspace holding this project's data."""
        return f"p-{self.id}"


class UsageFigures(models.Model):
    """What a workspace holds in MLflow: the one definition of the usage figures. MLflow's
    counts and last change (embedded/activity.py), the stored ProjectUsage row and the `usage`
    report's columns are these fields (an unsaved ProjectUsage carries figures in memory)."""

    experiments = models.IntegerField(default=0)
    runs = models.IntegerField(default=0)
    registered_models = models.IntegerField(default=0)
    logged_models = models.IntegerField(default=0)
    traces = models.IntegerField(default=0)
    last_activity = models.DateTimeField(null=True, blank=True, db_index=True)
    artifact_bytes = models.BigIntegerField(default=0, db_index=True)
    artifact_files = models.IntegerField(default=0)

    class Meta:
        abstract = True

    def figures(self) -> dict:
        """The figures by name, in their order (a report row's, a stored row's defaults)."""
        return {name: getattr(self, name) for name in USAGE_FIGURES}


USAGE_FIGURES = tuple(field.name for field in UsageFigures._meta.fields)


class ProjectUsage(UsageFigures):
    """What a project holds in MLflow, as last measured by `python manage.py usage`.

    Cached figures with their age: pages read this row, never the storage. Uploads add their
    size to `artifact_bytes` between measurements (edge/quota.py).
    """

    project = models.OneToOneField(
        GitLabProject, primary_key=True, on_delete=models.CASCADE, related_name="usage"
    )
    measured_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "project usage"

    def __str__(self) -> str:
        return f"{self.project}: {self.artifact_bytes} bytes"


class Membership(models.Model):
    """GitLab's answer to "which level has user U in project P", trusted until `expires_at`."""

    user = models.ForeignKey(GitLabUser, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(GitLabProject, on_delete=models.CASCADE, related_name="memberships")
    access_level = models.IntegerField(choices=AccessLevel.choices)
    # Empty for "no access" answers, which have no source.
    source = models.CharField(max_length=8, choices=MembershipSource.choices, blank=True)
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


class CIJob(models.Model):
    """A GitLab CI job whose CI_JOB_TOKEN called us: it acts in its own pipeline's project only."""

    id = models.BigIntegerField(primary_key=True, help_text="GitLab job id")
    project_id = models.BigIntegerField(help_text="GitLab id of the pipeline's project")
    pipeline_id = models.BigIntegerField()
    user = models.ForeignKey(GitLabUser, on_delete=models.CASCADE, related_name="ci_jobs")
    web_url = models.URLField(max_length=1024, blank=True)

    class Meta:
        verbose_name = "CI job"

    def __str__(self) -> str:
        return f"job {self.id} of pipeline {self.pipeline_id}"

    @property
    def project_path(self) -> str:
        """The project's path as the job's URL (`<GitLab>/<path>/-/jobs/<id>`) names it, or ""."""
        base, separator, _ = self.web_url.rpartition("/-/jobs/")
        prefix = settings.GITLAB_URL + "/"
        return base.removeprefix(prefix) if separator and base.startswith(prefix) else ""


class TokenFingerprint(models.Model):
    """Which GitLab user a token belongs to, keyed by the token's SHA-256 (never the token).

    `user` is empty for a token GitLab rejected: a short-lived negative answer. `job` is set
    for a CI job token, and `user` is then the user who triggered the job's pipeline.

    `reads_api` is what GitLab said of this very token on a route that needs the read_api
    scope (GET /user accepts read_user alone): None until it has been asked. A user's cached
    memberships are served only to their tokens that have proved it (issue: a read_user token
    must not borrow the membership another token of the same user fetched).
    """

    digest = models.CharField(max_length=64, primary_key=True)
    user = models.ForeignKey(
        GitLabUser, null=True, blank=True, on_delete=models.CASCADE, related_name="tokens"
    )
    job = models.ForeignKey(
        CIJob, null=True, blank=True, on_delete=models.CASCADE, related_name="fingerprints"
    )
    reads_api = models.BooleanField(
        null=True, blank=True, help_text="GitLab let this token use read_api routes"
    )
    fetched_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.digest[:12]}… → {self.user or 'rejected'}"

    @staticmethod
    def digest_of(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class WebhookDelivery(models.Model):
    """A GitLab webhook delivery already handled, by Idempotency-Key or event UUID."""

    # GitLab repeats the key when it retries a delivery; keys older than this are pruned.
    RETENTION = timedelta(days=7)

    key = models.CharField(max_length=255, primary_key=True)
    event = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event or 'event'} {self.key}"
