"""Counts and last change per workspace, read straight from MLflow's database: one grouped
query per kind of object (active experiments, runs and logged models, traces, registered
models with prompts left out). The portal shows them; usage.py adds artifact sizes and stores
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.prompt.constants import IS_PROMPT_TAG_KEY
from sqlalchemy import TextClause, bindparam, text

from mlflow_bridge.embedded import artifact_store
from mlflow_bridge.embedded.mlflow_app import registry_store, tracking_store
from projects.models import ProjectUsage

# Each: (workspace, count, last change in epoch milliseconds) per workspace. `{among}` keeps
# the workspaces asked for ("IN :workspaces"), or every one ("IS NOT NULL": a workspace always is).
TRACKING_COUNTS = {
    # A project's Default experiment, created with its first request, counts once it holds a
    # run or a trace: an empty one is not data (MLflow's own list shows it to everybody).
    "experiments": "SELECT e.workspace, COUNT(*), MAX(e.last_update_time) FROM experiments e "
    "WHERE e.lifecycle_stage = 'active' AND e.workspace {among} AND NOT (e.name = 'Default' "
    "AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.experiment_id) "
    "AND NOT EXISTS (SELECT 1 FROM trace_info t WHERE t.experiment_id = e.experiment_id)) "
    "GROUP BY e.workspace",
    "runs": "SELECT e.workspace, COUNT(*), MAX(COALESCE(r.end_time, r.start_time)) FROM runs r "
    "JOIN experiments e ON e.experiment_id = r.experiment_id "
    "WHERE r.lifecycle_stage = 'active' AND e.workspace {among} GROUP BY e.workspace",
    "logged_models": "SELECT e.workspace, COUNT(*), MAX(m.last_updated_timestamp_ms) "
    "FROM logged_models m JOIN experiments e ON e.experiment_id = m.experiment_id "
    "WHERE m.lifecycle_stage = 'active' AND e.workspace {among} GROUP BY e.workspace",
    "traces": "SELECT e.workspace, COUNT(*), MAX(t.timestamp_ms) FROM trace_info t "
    "JOIN experiments e ON e.experiment_id = t.experiment_id WHERE e.workspace {among} "
    "GROUP BY e.workspace",
}
REGISTRY_COUNTS = {
    "registered_models": "SELECT m.workspace, COUNT(*), MAX(m.last_updated_time) "
    "FROM registered_models m WHERE m.workspace {among} AND NOT EXISTS (SELECT 1 FROM "
    "registered_model_tags t WHERE t.workspace = m.workspace AND t.name = m.name "
    "AND t.key = :prompt_tag) GROUP BY m.workspace",
}


def _saw(figures: ProjectUsage, milliseconds: int | None) -> None:
    if milliseconds:
        seen = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
        figures.last_activity = max(figures.last_activity or seen, seen)


def _query(sql: str, selected: bool) -> TextClause:
    if not selected:
        return text(sql.format(among="IS NOT NULL"))
    query = text(sql.format(among="IN :workspaces"))
    return query.bindparams(bindparam("workspaces", expanding=True))


def activity_of(workspaces: list[str] | None = None) -> dict[str, ProjectUsage]:
    """The counts and last change of the given workspaces (of every one when None) that have
    any MLflow data, others left out; each as an unsaved ProjectUsage (projects.models'
    UsageFigures: the one definition of the usage figures), its artifact figures at 0."""
    if workspaces is not None and not workspaces:
        return {}
    found: dict[str, ProjectUsage] = {}
    parameters = {"workspaces": workspaces, "prompt_tag": IS_PROMPT_TAG_KEY}
    for store, counts in [
        (tracking_store(), TRACKING_COUNTS),
        (registry_store(), REGISTRY_COUNTS),
    ]:
        with store.engine.connect() as connection:
            for field, sql in counts.items():
                rows = connection.execute(_query(sql, workspaces is not None), parameters)
                for workspace, count, last_change in rows:
                    figures = found.setdefault(workspace, ProjectUsage())
                    setattr(figures, field, count)
                    _saw(figures, last_change)
    return found


def measured(workspace: str, counted: ProjectUsage | None = None) -> ProjectUsage:
    """Everything the workspace holds: its counts (`counted`, or read now), plus the size and
    number of its artifacts (one listing of its directory). Unsaved."""
    figures = counted or activity_of([workspace]).get(workspace) or ProjectUsage()
    directory = artifact_store.workspace_directory(workspace)
    figures.artifact_bytes, figures.artifact_files = artifact_store.size(directory)
    return figures


RECENT_RUNS = (
    "SELECT e.workspace, r.experiment_id, r.run_uuid, r.name, r.status, r.start_time, r.user_id "
    "FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id "
    "WHERE r.lifecycle_stage = 'active' AND e.lifecycle_stage = 'active' "
    "AND e.workspace IN :workspaces ORDER BY r.start_time DESC LIMIT :limit"
)


@dataclass(frozen=True)
class RecentRun:
    workspace: str
    experiment_id: str
    run_id: str
    name: str
    status: str
    started: datetime | None
    author: str


def recent_runs(workspaces: list[str], limit: int = 10) -> list[RecentRun]:
    """The latest `limit` active runs of these workspaces, newest first, in one query."""
    if not workspaces:
        return []
    query = text(RECENT_RUNS).bindparams(bindparam("workspaces", expanding=True))
    with tracking_store().engine.connect() as connection:
        rows = connection.execute(query, {"workspaces": workspaces, "limit": limit})
        return [
            RecentRun(
                workspace,
                str(experiment_id),
                run_id,
                name or run_id[:8],
                status or "",
                datetime.fromtimestamp(start / 1000, tz=UTC) if start else None,
                user_id or "",
            )  # fmt: skip
            for workspace, experiment_id, run_id, name, status, start, user_id in rows
        ]
