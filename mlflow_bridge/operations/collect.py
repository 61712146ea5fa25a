"""Garbage collection in one project: what `mlflow gc` does, bound to one workspace.

Soft-deleted runs, logged models and experiments of the workspace (deleted at least
`older_than` ago) lose their artifacts and then their rows, through MLflow's store
(`_get_deleted_runs`, `_hard_delete_run`, ... as `mlflow gc` calls them). MLflow's `gc` itself
cannot run here: it resolves `mlflow-artifacts:` URIs through a tracking server's HTTP API.
Each artifact directory is resolved below the workspace's own root, or left alone. The
staging files of uploads whose worker died go too, once nothing has written to them for a day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from mlflow.entities import ViewType
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.workspace_context import ServerWorkspaceContext

from mlflow_bridge.embedded.mlflow_app import flask_app
from mlflow_bridge.operations import artifact_store

# An upload in progress writes to its staging file all the time; a day of silence means its
# worker was killed (out of memory, SIGKILL) and nobody will finish or rename it.
ABANDONED_UPLOAD_AGE = timedelta(days=1)


@dataclass
class Collected:
    runs: list[str] = field(default_factory=list)
    logged_models: list[str] = field(default_factory=list)
    experiments: list[str] = field(default_factory=list)
    artifact_files: int = 0
    artifact_bytes: int = 0
    abandoned_uploads: int = 0


def _free(collected: Collected, uri: str, workspace: str, dry_run: bool) -> None:
    directory = artifact_store.directory_of(uri, workspace)
    if directory is None:
        return  # Not below this project's root: never ours to delete.
    size, count = artifact_store.size(directory)
    collected.artifact_bytes += size
    collected.artifact_files += count
    if not dry_run:
        artifact_store.delete(directory)


def collect(workspace: str, older_than: timedelta, *, dry_run: bool = False) -> Collected:
    """Permanently delete the workspace's soft-deleted objects older than `older_than`."""
    flask_app()
    from mlflow.server.handlers import _get_tracking_store

    store = _get_tracking_store()
    age = int(older_than.total_seconds() * 1000)
    collected = Collected()
    with ServerWorkspaceContext(workspace):
        threshold = get_current_time_millis() - age
        experiments = _deleted_experiments(store, threshold if age else None)
        run_ids = set(store._get_deleted_runs(older_than=age))
        run_ids.update(_runs_of(store, [experiment.experiment_id for experiment in experiments]))
        for run_id in sorted(run_ids):
            _free(collected, store.get_run(run_id).info.artifact_uri, workspace, dry_run)
            if not dry_run:
                store._hard_delete_run(run_id)
            collected.runs.append(run_id)
        for model_id in sorted(store._get_deleted_logged_models(older_than=age)):
            model = store.get_logged_model(model_id, allow_deleted=True)
            _free(collected, model.artifact_location, workspace, dry_run)
            if not dry_run:
                store._hard_delete_logged_model(model_id)
            collected.logged_models.append(model_id)
        for experiment in experiments:
            _free(collected, experiment.artifact_location, workspace, dry_run)
            if not dry_run:
                store._hard_delete_experiment(experiment.experiment_id)
            collected.experiments.append(experiment.experiment_id)
    _free_abandoned_uploads(collected, workspace, dry_run)
    return collected


def _free_abandoned_uploads(collected: Collected, workspace: str, dry_run: bool) -> None:
    for stored in artifact_store.abandoned_uploads(workspace, ABANDONED_UPLOAD_AGE):
        collected.abandoned_uploads += 1
        collected.artifact_files += 1
        collected.artifact_bytes += stored.size
        if not dry_run:
            artifact_store.delete_file(stored.key)


def _deleted_experiments(store, updated_before: int | None) -> list:
    found, token = [], None
    while True:
        page = store.search_experiments(
            view_type=ViewType.DELETED_ONLY,
            filter_string=f"last_update_time < {updated_before}" if updated_before else None,
            page_token=token,
        )
        found.extend(page)
        if not (token := page.token):
            return found


def _runs_of(store, experiment_ids: list[str]) -> list[str]:
    """Every run of the deleted experiments, whatever its own stage (they go with it)."""
    found, token = [], None
    while experiment_ids:
        page = store.search_runs(experiment_ids, "", ViewType.ALL, page_token=token)
        found.extend(run.info.run_id for run in page)
        if not (token := page.token):
            break
    return found
