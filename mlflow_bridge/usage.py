"""Usage per project: what each workspace holds in MLflow's database and its artifact store.

Measuring costs one grouped query per kind of object for all workspaces together, plus one
listing of each project's artifact directory (a directory walk, or S3 listings of 1,000 keys
each). `measure()` stores the figures in ProjectUsage with the time they were taken; pages and
`usage --cached` read those rows only, never the storage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone
from mlflow.prompt.constants import IS_PROMPT_TAG_KEY
from sqlalchemy import text

from mlflow_bridge import artifact_store
from mlflow_bridge.mlflow_app import flask_app
from projects.models import GitLabProject, ProjectUsage

WORKSPACE_PREFIX = "p-"

# Each: (workspace, count, last change in epoch milliseconds), for every workspace.
TRACKING_QUERIES = {
    "experiments": "SELECT workspace, COUNT(*), MAX(last_update_time) FROM experiments "
    "WHERE lifecycle_stage = 'active' GROUP BY workspace",
    "runs": "SELECT e.workspace, COUNT(*), MAX(COALESCE(r.end_time, r.start_time)) FROM runs r "
    "JOIN experiments e ON e.experiment_id = r.experiment_id "
    "WHERE r.lifecycle_stage = 'active' GROUP BY e.workspace",
    "logged_models": "SELECT e.workspace, COUNT(*), MAX(m.last_updated_timestamp_ms) "
    "FROM logged_models m JOIN experiments e ON e.experiment_id = m.experiment_id "
    "WHERE m.lifecycle_stage = 'active' GROUP BY e.workspace",
    "traces": "SELECT e.workspace, COUNT(*), MAX(t.timestamp_ms) FROM trace_info t "
    "JOIN experiments e ON e.experiment_id = t.experiment_id GROUP BY e.workspace",
}
REGISTERED_MODELS = text(
    "SELECT m.workspace, COUNT(*), MAX(m.last_updated_time) FROM registered_models m "
    "WHERE NOT EXISTS (SELECT 1 FROM registered_model_tags t WHERE t.workspace = m.workspace "
    "AND t.name = m.name AND t.key = :prompt_tag) GROUP BY m.workspace"
)


@dataclass
class Usage:
    experiments: int = 0
    runs: int = 0
    registered_models: int = 0
    logged_models: int = 0
    traces: int = 0
    artifact_bytes: int = 0
    artifact_files: int = 0
    last_activity: datetime | None = None

    def saw(self, milliseconds: int | None) -> None:
        if milliseconds:
            seen = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
            self.last_activity = max(self.last_activity or seen, seen)


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
    flask_app()
    from mlflow.server.handlers import _get_model_registry_store, _get_tracking_store

    found: dict[str, Usage] = {}

    def add(rows, field: str) -> None:
        for workspace, count, last_change in rows:
            usage = found.setdefault(workspace, Usage())
            setattr(usage, field, count)
            usage.saw(last_change)

    with _get_tracking_store().engine.connect() as connection:
        for field, query in TRACKING_QUERIES.items():
            add(connection.execute(text(query)), field)
    with _get_model_registry_store().engine.connect() as connection:
        rows = connection.execute(REGISTERED_MODELS, {"prompt_tag": IS_PROMPT_TAG_KEY})
        add(rows, "registered_models")
    return found


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
