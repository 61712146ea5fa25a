"""The embedded MLflow server: its Flask app, its stores, and each project's workspace.

With the rest of `mlflow_bridge/embedded/` this is the seam: the only code that reaches into
MLflow's non-public modules and private names. Everything else calls the small functions
here (`tracking_store()`, `in_workspace()`, `workspace_names()`...), and tests/test_mlflow_seam.py
names each private symbol the seam relies on, so an MLflow upgrade fails there first.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from functools import cache

from django.conf import settings
from flask import Flask
from mlflow.tracing.constant import TRACE_RENDERER_ASSET_PATH
from mlflow.utils.workspace_context import ServerWorkspaceContext
from sqlalchemy import text
from sqlalchemy.engine import Engine

DEFAULT_EXPERIMENT_NAME = "Default"
# MLflow's notebook trace renderer, below the server's root (edge/notebook.py).
NOTEBOOK_RENDERER_PATH = TRACE_RENDERER_ASSET_PATH


def _configure_environment() -> None:
    """Hand our settings to MLflow, which reads its server configuration only from os.environ.

    This is the one place the service writes the environment, and it must run before
    `mlflow.server` is imported.
    """
    os.environ.update(
        {
            "MLFLOW_ENABLE_WORKSPACES": "true",
            "_MLFLOW_SERVER_FILE_STORE": settings.MLFLOW_BACKEND_STORE_URI,
            "_MLFLOW_SERVER_REGISTRY_STORE": settings.MLFLOW_REGISTRY_STORE_URI,
            "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
            "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
            "_MLFLOW_SERVER_ARTIFACT_DESTINATION": settings.MLFLOW_ARTIFACTS_DESTINATION,
            # Host, origin and CORS checks are Django's job here (ALLOWED_HOSTS, CSRF); MLflow's
            # own would refuse every public Host header.
            "MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE": "true",
            # Too long a tag or param value is a 400, not silently cut to MLflow's limit.
            "MLFLOW_TRUNCATE_LONG_VALUES": "false",
        }
    )


def _basic_auth_off() -> None:
    """MLflow's basic-auth app, as MLflow's handlers see it: off (access is GitLab's here).

    search_runs imports `mlflow.server.auth` on every call to ask whether it is on; without
    its optional Flask-WTF the import fails after running most of the module, and a failed
    import is not kept: ~1 ms of CPU per call, fixed whatever the runs. Installing Flask-WTF
    would turn MLflow's own permission filter on instead. This stub answers what the handlers
    ask (auth_config, is_auth_enabled, the GraphQL middleware); nothing here serves `mlflow
    server --app-name basic-auth`.
    """
    auth = types.ModuleType("mlflow.server.auth", "MLflow's basic-auth app: off (SharingHub).")
    auth.auth_config = None
    auth.is_auth_enabled = lambda: False
    auth.get_graphql_authorization_middleware = list
    sys.modules.setdefault("mlflow.server.auth", auth)


@cache
def flask_app() -> Flask:
    """MLflow's Flask app with its stores built; imported once per process."""
    _configure_environment()
    _basic_auth_off()
    from mlflow.server import app, handlers

    handlers.initialize_backend_stores(
        settings.MLFLOW_BACKEND_STORE_URI,
        settings.MLFLOW_REGISTRY_STORE_URI,
        "mlflow-artifacts:/",
    )
    from mlflow_bridge.embedded import (
        otlp,
        parse,
        promptlab,
        registry,
        s3,
        trace_locations,
        trace_spans,
    )

    s3.register()
    parse.install()
    promptlab.install()
    registry.install()
    trace_locations.install()
    trace_spans.install()

    # `mlflow server` serves OTLP from FastAPI; here it is a Flask route like the others.
    app.add_url_rule(otlp.RULE, "sharinghub_otlp_traces", otlp.export_traces, methods=["POST"])
    return app


def upgrade_database() -> None:
    """Create or upgrade MLflow's tables (what `mlflow db upgrade` does)."""
    _configure_environment()
    from mlflow.store.db.utils import _initialize_tables, _upgrade_db, create_sqlalchemy_engine

    engine = create_sqlalchemy_engine(settings.MLFLOW_BACKEND_STORE_URI)
    from sqlalchemy import inspect

    if "alembic_version" in inspect(engine).get_table_names():
        _upgrade_db(engine)
    else:
        _initialize_tables(engine)
    engine.dispose()
    flask_app()


# How long a worker trusts that a workspace it saw still exists. Another process deletes one
# only in `purge_projects`, of a project not served (orphaned) for --orphaned-for: its first
# request after GitLab answers for it again comes long after this, and recreates it.
WORKSPACE_RECHECK_SECONDS = 600
_known_workspaces: dict[str, float] = {}  # workspace -> time.monotonic() it was seen
# A workspace's Default experiment, checked on each use (only requests naming experiment "0"):
# `gc` in another process hard-deletes it once a user deleted it.
_default_experiments: dict[str, str] = {}
_lock = threading.Lock()
_EXISTS = "SELECT 1 FROM experiments WHERE experiment_id = :id AND workspace = :workspace"


def ensure_workspace(workspace: str, description: str) -> None:
    """Create the project's workspace and its `Default` experiment on first use; safe when
    workers race to create them. A bare server always has experiment "0", `Default`: clients,
    the UI and MLflow's own tests expect a fresh project's search to list it."""
    seen = _known_workspaces.get(workspace)
    if seen is not None and time.monotonic() - seen < WORKSPACE_RECHECK_SECONDS:
        return
    flask_app()
    from mlflow.entities import Workspace
    from mlflow.exceptions import MlflowException

    store = workspace_store()
    try:
        store.get_workspace(workspace)
    except MlflowException:
        try:
            store.create_workspace(Workspace(name=workspace, description=description))
        except MlflowException:
            store.get_workspace(workspace)  # Another worker won the race; it must exist now.
    default_experiment_id(workspace)
    with _lock:
        _known_workspaces[workspace] = time.monotonic()


def default_experiment_id(workspace: str) -> str:
    """Id of the project's `Default` experiment, which stands in for MLflow's experiment "0"."""
    remembered = _default_experiments.get(workspace)
    if remembered is not None and _exists(remembered, workspace):
        return remembered
    from mlflow.exceptions import MlflowException

    store = tracking_store()
    with in_workspace(workspace):
        experiment = store.get_experiment_by_name(DEFAULT_EXPERIMENT_NAME)
        if experiment is None:
            try:
                experiment_id = store.create_experiment(DEFAULT_EXPERIMENT_NAME)
            except MlflowException:
                # Another worker created it between our lookup and our insert.
                experiment_id = store.get_experiment_by_name(DEFAULT_EXPERIMENT_NAME).experiment_id
        else:
            experiment_id = experiment.experiment_id
    with _lock:
        _default_experiments[workspace] = experiment_id
    return experiment_id


def _exists(experiment_id: str, workspace: str) -> bool:
    """Whether the experiment's row is still there (a primary-key SELECT)."""
    with tracking_store().engine.connect() as connection:
        parameters = {"id": int(experiment_id), "workspace": workspace}
        return connection.execute(text(_EXISTS), parameters).first() is not None


# MLflow's request workspace, bound for a with-block: what MLflow's stores scope every query by.
in_workspace = ServerWorkspaceContext


def tracking_store():
    """MLflow's tracking store (SqlAlchemyStore), built on first use."""
    flask_app()
    from mlflow.server.handlers import _get_tracking_store

    return _get_tracking_store()


def registry_store():
    """MLflow's model registry store, built on first use."""
    flask_app()
    from mlflow.server.handlers import _get_model_registry_store

    return _get_model_registry_store()


def workspace_store():
    """MLflow's workspace store, built on first use."""
    flask_app()
    from mlflow.server.workspace_helpers import _get_workspace_store

    return _get_workspace_store()


def engines() -> list[Engine]:
    """MLflow's tracking database, and its registry database when that is another one."""
    tracking, registry = tracking_store().engine, registry_store().engine
    return [tracking] if str(tracking.url) == str(registry.url) else [tracking, registry]


def workspace_names() -> list[str]:
    """Every workspace MLflow knows, data or not."""
    return [workspace.name for workspace in workspace_store().list_workspaces()]


def delete_workspace(workspace: str) -> None:
    """MLflow's own deletion of a workspace and what its relationships reach (CASCADE); a
    workspace already gone is no error."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.workspace.abstract_store import WorkspaceDeletionMode

    try:
        workspace_store().delete_workspace(workspace, WorkspaceDeletionMode.CASCADE)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    with _lock:
        _known_workspaces.pop(workspace, None)
        _default_experiments.pop(workspace, None)


def ping() -> None:
    """One trivial query on MLflow's tracking database; raises when it does not answer."""
    with tracking_store().engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def schema_is_current() -> bool:
    """Whether MLflow's database schema is at the installed MLflow's head revision."""
    _configure_environment()
    from mlflow.exceptions import MlflowException
    from mlflow.store.db.utils import _verify_schema, create_sqlalchemy_engine

    engine = create_sqlalchemy_engine(settings.MLFLOW_BACKEND_STORE_URI)
    try:
        _verify_schema(engine)
    except MlflowException:
        return False
    finally:
        engine.dispose()
    return True
