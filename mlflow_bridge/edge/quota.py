"""PROJECT_ARTIFACT_QUOTA_BYTES: an upload that would take a project beyond it is refused.

The check runs before MLflow reads a byte of the upload, so a refused upload leaves nothing
behind. A project's usage is its stored ProjectUsage figure (measured by `usage` beside the
request path, or here on its first upload), plus what each accepted upload added since; a
delete re-lists the project's directory. Both measurements are the seam's (MLflow's counts and
artifact store): the request path never imports the operations code. Uploads
in flight at the same moment are each checked against the usage before them, so together they
may overshoot by at most their own sizes. Reads and deletes are never checked.

A route whose artifacts MLflow writes itself from a JSON body (create-promptlab-run: its
model and results table) is checked with the body's size, which those files repeat, and the
project is re-measured once MLflow has written them.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from mlflow_bridge.edge.errors import BridgeError
from mlflow_bridge.edge.routes import Action, BodyKind, Route
from mlflow_bridge.embedded import artifact_store
from mlflow_bridge.embedded.activity import measured
from projects.models import GitLabProject, ProjectUsage
from projects.units import human

UPLOAD_METHODS = frozenset({"PUT", "POST"})


def _uploads_a_file(request: HttpRequest, route: Route) -> bool:
    """A route of the table that carries a file up (not multipart uploads, whose parts go
    straight to S3 and which MLflow serves only with MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD)."""
    return request.method in UPLOAD_METHODS and route.body in (
        BodyKind.FILE,
        BodyKind.BUFFERED_FILE,
    )


def _deletes_a_file(request: HttpRequest, route: Route) -> bool:
    return route.action is Action.DELETE and "artifact_path" in request.path_arguments


def _used(project: GitLabProject) -> int:
    row = ProjectUsage.objects.filter(project=project).only("artifact_bytes").first()
    if row is not None:
        return row.artifact_bytes
    # Never measured: all its figures now, once (`usage` keeps them current afterwards).
    figures = measured(project.workspace)
    ProjectUsage.objects.update_or_create(
        project=project, defaults={**figures.figures(), "measured_at": timezone.now()}
    )
    return figures.artifact_bytes


def _remeasure_artifacts(project: GitLabProject) -> None:
    """The project's artifact bytes after a delete: one listing of its directory only."""
    size, count = artifact_store.size(artifact_store.workspace_directory(project.workspace))
    ProjectUsage.objects.filter(project=project).update(artifact_bytes=size, artifact_files=count)


def check(project: GitLabProject, request: HttpRequest, route: Route) -> int:
    """The size of an upload the quota allows (0 when not an upload, or no quota); raises
    BridgeError for one it does not."""
    limit = settings.PROJECT_ARTIFACT_QUOTA_BYTES
    if not limit or not (_uploads_a_file(request, route) or route.server_artifacts):
        return 0
    length = request.META.get("CONTENT_LENGTH") or ""
    if not length.isdecimal():
        raise BridgeError(
            "INVALID_PARAMETER_VALUE",
            f"{project.path} has an artifact quota: send uploads with a Content-Length header "
            "(the mlflow client does), not chunked.",
        )
    used, size = _used(project), int(length)
    if used + size > limit:
        raise BridgeError(
            "REQUEST_LIMIT_EXCEEDED",
            f"Artifact quota exceeded: {project.path} holds {human(used)} ({used} bytes) of "
            f"artifacts, and this upload of {human(size)} would pass its limit of "
            f"{human(limit)} ({limit} bytes, PROJECT_ARTIFACT_QUOTA_BYTES). Delete artifacts "
            "(and run `gc`), or ask the administrators for more.",
            # 413, not MLflow's 429 for this code: clients retry a 429, and this will not pass.
            status=413,
        )
    return size


def record(
    project: GitLabProject, request: HttpRequest, route: Route, size: int, status: int
) -> None:
    """Count an accepted upload; re-measure after an artifact delete (only with a quota)."""
    if not settings.PROJECT_ARTIFACT_QUOTA_BYTES or status != 200:
        return
    if route.server_artifacts:
        _remeasure_artifacts(project)  # MLflow wrote files of sizes only it knows
    elif size:
        ProjectUsage.objects.filter(project=project).update(
            artifact_bytes=F("artifact_bytes") + size
        )
    elif _deletes_a_file(request, route):
        _remeasure_artifacts(project)
