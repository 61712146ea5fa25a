"""GitLab CI job tokens: the running job behind a CI_JOB_TOKEN, and its rights in its project.

A job acts as the user who triggered its pipeline, inside the pipeline's project and nowhere
else. With GITLAB_SERVICE_TOKEN, that project and the user's role in it are asked of GitLab
(GET /projects/:id, members/all); without it, the job's URL names the project's path and
CI_JOB_TOKEN_DEFAULT_ROLE gives the role. GitLab answers GET /job only while the job runs, so
a finished job's token stops working when its fingerprint expires (MEMBERSHIP_CACHE_TTL).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from projects import gitlab, records
from projects.models import (
    AccessLevel,
    CIJob,
    GitLabProject,
    GitLabUser,
    Membership,
)

logger = logging.getLogger(__name__)

# GitLab's job token prefix. Self-managed instances may change it, so a token GET /user refuses
# is also tried on GET /job, unless its prefix says it is another kind of token (personal,
# project or group access, deploy, runner, trigger, feed, OAuth application secret).
JOB_TOKEN_PREFIX = "glcbt-"
OTHER_TOKEN_PREFIXES = ("glpat-", "gldt-", "glrt-", "glptt-", "glft-", "gloas-")


def looks_like_job_token(token: str) -> bool:
    return token.startswith(JOB_TOKEN_PREFIX)


def may_be_job_token(token: str) -> bool:
    """Whether a token GET /user refused is worth asking GET /job about."""
    return not token.startswith(OTHER_TOKEN_PREFIXES)


def remember_job(token: str, digest: str) -> records.Credential:
    """Ask GitLab for the job behind a job token; its credential, once the job is known to run.

    Raises gitlab.TokenRejected when GitLab does not know the token or the job is not running.
    """
    found = gitlab.GitLabClient(token, job_token=True).current_job()
    if found.status != "running":
        raise gitlab.TokenRejected(
            f"CI job {found.id} is {found.status or 'not running'}; a CI_JOB_TOKEN works only "
            "while its job runs"
        )
    user, _ = GitLabUser.objects.update_or_create(
        id=found.user.id,
        defaults={
            "username": found.user.username,
            "bot": found.user.bot,
            "last_seen": timezone.now(),
        },
    )
    job, _ = CIJob.objects.update_or_create(
        id=found.id,
        defaults={
            "project_id": found.project_id,
            "pipeline_id": found.pipeline_id,
            "user": user,
            "web_url": found.web_url,
        },
    )
    records.remember_fingerprint(digest, user, positive=True, job=job)
    return records.Credential(token, digest, user, job)


def job_access(job: CIJob, user: GitLabUser, path: str) -> records.ProjectAccess | None:
    """The job's access to the project at `path`: None unless it is the job's own project."""
    project = _job_project(job)
    if project is None or project.path != path:
        return None
    return records.ProjectAccess(project, user, _job_level(project, user), job=job)


def _job_project(job: CIJob) -> GitLabProject | None:
    known = GitLabProject.objects.filter(id=job.project_id).first()
    client = gitlab.service_client()
    if client is None:
        path = job.project_path
        if not path:
            logger.warning(
                "CI job %s: its URL %s does not start with GITLAB_URL, so its project's path "
                "is unknown; set GITLAB_SERVICE_TOKEN", job.id, job.web_url,
            )  # fmt: skip
            return known
        if known is not None and known.path == path:
            return known
        return records.move_project(job.project_id, path)
    ttl = timedelta(seconds=settings.MEMBERSHIP_CACHE_TTL)
    if known is not None and known.last_seen > timezone.now() - ttl:
        return known
    try:
        found = _as_service(lambda: client.project_metadata(job.project_id))
    except gitlab.GitLabUnavailable:
        if known is None or not records.within_outage_grace(known.last_seen):
            raise
        return known
    return None if found is None else records.remember_project(found)


def _job_level(project: GitLabProject, user: GitLabUser) -> int:
    client = gitlab.service_client()
    if client is None:
        return AccessLevel[settings.CI_JOB_TOKEN_DEFAULT_ROLE.upper()]
    membership = Membership.objects.filter(user=user, project=project).first()
    if membership is not None and membership.is_fresh:
        return membership.access_level
    try:
        level, source = _as_service(lambda: client.membership(project.id, project.path, user.id))
    except gitlab.GitLabUnavailable:
        if not records.serves_during_outage(membership):
            raise
        return membership.access_level
    return records.remember_membership(user, project, level, source).access_level


def _as_service(call):
    """Call GitLab with the service token; its refusal is the service's fault, not the job's."""
    try:
        return call()
    except gitlab.TokenRejected as exc:
        logger.error("GitLab refuses GITLAB_SERVICE_TOKEN (%s): renew it", exc)
        raise gitlab.GitLabUnavailable("GitLab refuses this service's own token") from None
