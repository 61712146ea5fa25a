"""What each project holds in MLflow, for the portal: one grouped query per kind of object.

Counts of active experiments, active runs and registered models (prompts excluded), and the
last time any of them changed, read straight from MLflow's database by workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.prompt.constants import IS_PROMPT_TAG_KEY
from sqlalchemy import bindparam, text

from mlflow_bridge.mlflow_app import flask_app

# Each returns (workspace, count, last change in epoch milliseconds) for the given workspaces.
EXPERIMENTS = text(
    "SELECT workspace, COUNT(*), MAX(last_update_time) FROM experiments "
    "WHERE lifecycle_stage = 'active' AND workspace IN :workspaces GROUP BY workspace"
).bindparams(bindparam("workspaces", expanding=True))
RUNS = text(
    "SELECT e.workspace, COUNT(*), MAX(COALESCE(r.end_time, r.start_time)) FROM runs r "
    "JOIN experiments e ON e.experiment_id = r.experiment_id "
    "WHERE r.lifecycle_stage = 'active' AND e.workspace IN :workspaces GROUP BY e.workspace"
).bindparams(bindparam("workspaces", expanding=True))
MODELS = text(
    "SELECT m.workspace, COUNT(*), MAX(m.last_updated_time) FROM registered_models m "
    "WHERE m.workspace IN :workspaces AND NOT EXISTS (SELECT 1 FROM registered_model_tags t "
    "WHERE t.workspace = m.workspace AND t.name = m.name AND t.key = :prompt_tag) "
    "GROUP BY m.workspace"
).bindparams(bindparam("workspaces", expanding=True))


@dataclass
class Activity:
    experiments: int = 0
    runs: int = 0
    models: int = 0
    last_activity: datetime | None = None

    def saw(self, milliseconds: int | None) -> None:
        if milliseconds:
            seen = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
            self.last_activity = max(self.last_activity or seen, seen)


def activity_of(workspaces: list[str]) -> dict[str, Activity]:
    """Activity of the given workspaces that have any MLflow data (others are left out)."""
    if not workspaces:
        return {}
    flask_app()
    from mlflow.server.handlers import _get_model_registry_store, _get_tracking_store

    found: dict[str, Activity] = {}
    tracking = _get_tracking_store().engine
    registry = _get_model_registry_store().engine
    for engine, query, field, parameters in [
        (tracking, EXPERIMENTS, "experiments", {}),
        (tracking, RUNS, "runs", {}),
        (registry, MODELS, "models", {"prompt_tag": IS_PROMPT_TAG_KEY}),
    ]:
        with engine.connect() as connection:
            rows = connection.execute(query, {"workspaces": workspaces, **parameters})
            for workspace, count, last_change in rows:
                activity = found.setdefault(workspace, Activity())
                setattr(activity, field, count)
                activity.saw(last_change)
    return found
