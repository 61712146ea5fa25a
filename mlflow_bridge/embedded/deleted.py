"""A workspace's soft-deleted objects, and deleting them for good: what `mlflow gc` does,
through the tracking store's own (private) methods, bound to one workspace."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.entities import ViewType
from mlflow.utils.time import get_current_time_millis

from mlflow_bridge.embedded.mlflow_app import in_workspace, tracking_store

# In the order they are deleted: a deleted experiment's runs before the experiment.
KINDS = ("run", "logged model", "experiment")


@dataclass(frozen=True)
class Deleted:
    kind: str  # one of KINDS
    object_id: str
    artifact_uri: str


def soft_deleted(workspace: str, older_than_ms: int) -> list[Deleted]:
    """The workspace's objects deleted more than `older_than_ms` ago (all of them for 0),
    runs first, then logged models, then experiments (with every run of theirs)."""
    store = tracking_store()
    with in_workspace(workspace):
        threshold = get_current_time_millis() - older_than_ms
        experiments = _deleted_experiments(store, threshold if older_than_ms else None)
        run_ids = set(store._get_deleted_runs(older_than=older_than_ms))
        run_ids.update(_runs_of(store, [experiment.experiment_id for experiment in experiments]))
        model_ids = store._get_deleted_logged_models(older_than=older_than_ms)
        return [
            *(Deleted("run", i, store.get_run(i).info.artifact_uri) for i in sorted(run_ids)),
            *(
                Deleted("logged model", i, store.get_logged_model(i, allow_deleted=True)
                        .artifact_location)
                for i in sorted(model_ids)
            ),
            *(Deleted("experiment", e.experiment_id, e.artifact_location) for e in experiments),
        ]  # fmt: skip


def hard_delete(workspace: str, deleted: Deleted) -> None:
    """Delete one soft-deleted object for good (its artifacts are the caller's)."""
    store = tracking_store()
    delete = {
        "run": store._hard_delete_run,
        "logged model": store._hard_delete_logged_model,
        "experiment": store._hard_delete_experiment,
    }[deleted.kind]
    with in_workspace(workspace):
        delete(deleted.object_id)


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
