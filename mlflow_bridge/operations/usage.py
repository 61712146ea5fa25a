"""Usage per project: what each workspace holds in MLflow's database and its artifact store.

Measuring costs one grouped query per kind of object for all workspaces together, plus one
listing of each project's artifact directory (a directory walk, or S3 listings of 1,000 keys
each). `measure()` stores the figures in ProjectUsage with the time they were taken; pages and
`usage --cached` read those rows only, never the storage.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from mlflow_bridge.embedded import activity, mlflow_app
from projects.models import USAGE_FIGURES, GitLabProject, ProjectUsage

WORKSPACE_PREFIX = "p-"


def project_id_of(workspace: str) -> int | None:
    """The GitLab project id of a `p-<id>` workspace; None for MLflow's own (`default`)."""
    number = workspace.removeprefix(WORKSPACE_PREFIX)
    return int(number) if workspace.startswith(WORKSPACE_PREFIX) and number.isdecimal() else None


def workspaces() -> list[str]:
    """Every project workspace MLflow knows, data or not."""
    names = mlflow_app.workspace_names()
    return sorted((name for name in names if project_id_of(name) is not None), key=project_id_of)


def database_figures() -> dict[str, ProjectUsage]:
    """Counts and last activity of every workspace with data, from MLflow's database."""
    return activity.activity_of()


def measure_workspace(workspace: str, figures: ProjectUsage | None = None) -> ProjectUsage:
    """The workspace's figures: `figures` (its counts, if it has any data) with its artifacts."""
    return activity.measured(workspace, figures or ProjectUsage())


def measure(only: list[str] | None = None) -> dict[str, ProjectUsage]:
    """Measure every project workspace (or `only` these) and store the figures of projects the
    service knows. Returns the figures by workspace."""
    figures = database_figures()
    measured = {}
    for workspace in only if only is not None else workspaces():
        measured[workspace] = measure_workspace(workspace, figures.get(workspace))
    store(measured)
    return measured


def store(measured: dict[str, ProjectUsage]) -> None:
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
                    project_id=project_id, defaults={**usage.figures(), "measured_at": now}
                )


COLUMNS = ["project_id", "path", "orphaned_at", *USAGE_FIGURES, "measured_at"]


def report(measured: dict[str, ProjectUsage] | None = None) -> list[dict]:
    """Rows for reports, largest first: the figures just measured, or else the stored ones
    with their `measured_at`."""
    if measured is None:
        rows = [
            _row(row.project_id, row.project, row, row.measured_at)
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


def _row(
    project_id: int, project: GitLabProject | None, figures: ProjectUsage, measured_at
) -> dict:
    """One report row; `path` is empty for a workspace whose project the service never saw."""
    return {
        "project_id": project_id,
        "path": project.path if project else "",
        "orphaned_at": project.orphaned_at if project else None,
        **figures.figures(),
        "measured_at": measured_at,
    }
