"""Usage per project: what each workspace holds in MLflow's database and its artifact store.

Measuring costs one grouped query per kind of object for all workspaces together, plus one
listing of each project's artifact directory (a directory walk, or S3 listings of 1,000 keys
each). `measure()` stores the figures in ProjectUsage with the time they were taken; pages and
`usage --cached` read those rows only, never the storage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from django.db import transaction
from django.utils import timezone

from mlflow_bridge.embedded.mlflow_app import flask_app
from mlflow_bridge.operations import artifact_store
from mlflow_bridge.operations.activity import Activity, activity_of
from projects.models import GitLabProject, ProjectUsage

WORKSPACE_PREFIX = "p-"


@dataclass
class Usage(Activity):
    """A workspace's counts and last change (activity.py), with its artifacts' size."""

    artifact_bytes: int = 0
    artifact_files: int = 0


def project_id_of(workspace: str) -> int | None:
    """The GitLab project id of a `p-<id>` workspace; None for MLflow's own (`default`)."""
    number = workspace.removeprefix(WORKSPACE_PREFIX)
    return int(number) if workspace.startswith(WORKSPACE_PREFIX) and number.isdigit() else None


def workspaces() -> list[str]:
    """Every project workspace MLflow knows, data or not."""
    flask_app()
    from mlflow.server.workspace_helpers import _get_workspace_store

    names = [workspace.name for workspace in _get_workspace_store().list_workspaces()]
    return sorted((name for name in names if project_id_of(name) is not None), key=project_id_of)


def database_figures() -> dict[str, Usage]:
    """Counts and last activity of every workspace with data, from MLflow's database."""
    return activity_of(make=Usage)


def measure_workspace(workspace: str, figures: Usage | None = None) -> Usage:
    usage = figures or Usage()
    usage.artifact_bytes, usage.artifact_files = artifact_store.size(
        artifact_store.workspace_directory(workspace)
    )
    return usage


def measure(only: list[str] | None = None) -> dict[str, Usage]:
    """Measure every project workspace (or `only` these) and store the figures of projects the
    service knows. Returns the figures by workspace."""
    figures = database_figures()
    measured = {}
    for workspace in only if only is not None else workspaces():
        measured[workspace] = measure_workspace(workspace, figures.get(workspace))
    store(measured)
    return measured


def store(measured: dict[str, Usage]) -> None:
    known = set(
        GitLabProject.objects.filter(
            id__in=[project_id_of(workspace) for workspace in measured]
        ).values_list("id", flat=True)
    )
    now = timezone.now()
    with transaction.atomic():
        for workspace, usage in measured.items():
            if (project_id := project_id_of(workspace)) in known:
                ProjectUsage.objects.update_or_create(
                    project_id=project_id, defaults={**asdict(usage), "measured_at": now}
                )


def cached(project_id: int) -> Usage | None:
    """The stored figures of one project, or None when it was never measured."""
    row = ProjectUsage.objects.filter(project_id=project_id).first()
    return None if row is None else cached_row(row)


COLUMNS = ["project_id", "path", "orphaned_at", *(f.name for f in fields(Usage)), "measured_at"]


def report(measured: dict[str, Usage] | None = None) -> list[dict]:
    """Rows for reports, largest first: the figures just measured, or else the stored ones
    with their `measured_at`."""
    if measured is None:
        rows = [
            _row(row.project_id, row.project, cached_row(row), row.measured_at)
            for row in ProjectUsage.objects.select_related("project")
        ]
    else:
        projects = GitLabProject.objects.in_bulk([project_id_of(w) for w in measured])
        now = timezone.now()
        rows = [
            _row(project_id_of(workspace), projects.get(project_id_of(workspace)), figures, now)
            for workspace, figures in measured.items()
        ]
    return sorted(rows, key=lambda row: (-row["artifact_bytes"], row["project_id"]))


def _row(project_id: int, project: GitLabProject | None, figures: Usage, measured_at) -> dict:
    """One report row; `path` is empty for a workspace whose project the service never saw."""
    return {
        "project_id": project_id,
        "path": project.path if project else "",
        "orphaned_at": project.orphaned_at if project else None,
        **asdict(figures),
        "measured_at": measured_at,
    }


def cached_row(row: ProjectUsage) -> Usage:
    return Usage(**{field.name: getattr(row, field.name) for field in fields(Usage)})
