"""The portal's counts, read from MLflow's database: one grouped query per kind of object."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import event

from mlflow_bridge.embedded import mlflow_app
from mlflow_bridge.embedded.activity import activity_of, recent_runs

_ids = itertools.count(900_000)


@pytest.fixture
def stores():
    mlflow_app.flask_app()
    from mlflow.server.handlers import _get_model_registry_store, _get_tracking_store

    return _get_tracking_store(), _get_model_registry_store()


def workspace_with(stores, experiments: int, runs: int, models: int, prompts: int = 0) -> str:
    from mlflow.utils.workspace_context import ServerWorkspaceContext

    tracking, registry = stores
    workspace = f"p-{next(_ids)}"
    mlflow_app.ensure_workspace(workspace, description="test")
    with ServerWorkspaceContext(workspace):
        # Every workspace starts with its Default experiment: it counts as one of them.
        ids = [mlflow_app.default_experiment_id(workspace)]
        ids += [tracking.create_experiment(f"e{i}") for i in range(1, experiments)]
        for i in range(runs):
            tracking.create_run(ids[0], user_id="u", start_time=1_700_000_000_000 + i,
                                tags=[], run_name=f"r{i}")  # fmt: skip
        for i in range(models):
            registry.create_registered_model(f"m{i}")
        for i in range(prompts):  # a prompt is a registered model with this tag
            registry.create_registered_model(f"prompt{i}", tags=[_prompt_tag()])
    return workspace


def _prompt_tag():
    from mlflow.entities.model_registry import RegisteredModelTag
    from mlflow.prompt.constants import IS_PROMPT_TAG_KEY

    return RegisteredModelTag(IS_PROMPT_TAG_KEY, "true")


def test_it_counts_experiments_runs_and_models_per_workspace(stores):
    busy = workspace_with(stores, experiments=2, runs=3, models=1)
    quiet = workspace_with(stores, experiments=2, runs=0, models=0)

    found = activity_of([busy, quiet, "p-does-not-exist"])

    def counts(figures):
        return figures.experiments, figures.runs, figures.registered_models

    assert counts(found[busy]) == (2, 3, 1)
    assert counts(found[quiet]) == (1, 0, 0)  # its empty Default left out
    assert "p-does-not-exist" not in found
    assert found[busy].last_activity is not None


def test_it_leaves_prompts_and_deleted_experiments_out(stores):
    from mlflow.utils.workspace_context import ServerWorkspaceContext

    workspace = workspace_with(stores, experiments=3, runs=0, models=1, prompts=2)
    with ServerWorkspaceContext(workspace):
        tracking = stores[0]
        tracking.delete_experiment(tracking.get_experiment_by_name("e1").experiment_id)

    found = activity_of([workspace])[workspace]

    assert (found.experiments, found.registered_models) == (1, 1)  # e2 (Default is empty)


def test_it_makes_one_query_per_kind_whatever_the_number_of_projects(stores):
    workspaces = [workspace_with(stores, experiments=1, runs=1, models=1) for _ in range(4)]
    statements = []

    def count(*args):
        statements.append(args[2])

    engines = {stores[0].engine, stores[1].engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        activity_of(workspaces)
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)

    assert len(statements) == 5


def test_it_counts_no_data_where_only_the_empty_default_experiment_is(stores):
    """MLflow's UI lists an empty Default everywhere: it is not the project's data."""
    fresh = workspace_with(stores, experiments=1, runs=0, models=0)

    assert fresh not in activity_of([fresh])


def test_it_lists_the_latest_runs_of_the_workspaces_asked_for(stores):
    older = workspace_with(stores, experiments=1, runs=2, models=0)
    other = workspace_with(stores, experiments=1, runs=1, models=0)
    elsewhere = workspace_with(stores, experiments=1, runs=1, models=0)

    found = recent_runs([older, other], limit=2)

    assert (found[0].workspace, found[0].name, found[0].author) == (older, "r1", "u")
    assert len(found) == 2 and {run.workspace for run in found} <= {older, other}
    assert elsewhere not in {run.workspace for run in recent_runs([older, other], limit=10)}
    assert found[0].status and found[0].started is not None
