"""The embedded MLflow server: its Flask app, its stores, and each project's workspace."""

from __future__ import annotations

import os
import threading
from functools import cache

from django.conf import settings
from flask import Flask

DEFAULT_EXPERIMENT_NAME = "Default"


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


@cache
def flask_app() -> Flask:
    """MLflow's Flask app with its stores built; imported once per process."""
    _configure_environment()
    from mlflow.server import app, handlers

    handlers.initialize_backend_stores(
        settings.MLFLOW_BACKEND_STORE_URI,
        settings.MLFLOW_REGISTRY_STORE_URI,
        "mlflow-artifacts:/",
    )
    from mlflow_bridge import authorship, messages, otlp, s3, storage

    s3.register()
    authorship.install()
    messages.install()
    storage.install()

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


_known_workspaces: set[str] = set()
_default_experiments: dict[str, str] = {}
_lock = threading.Lock()


def ensure_workspace(workspace: str, description: str) -> None:
    """Create the project's workspace and its `Default` experiment on first use; safe when
    workers race to create them. A bare server always has experiment "0", `Default`: clients,
    the UI and MLflow's own tests expect a fresh project's search to list it."""
    if workspace in _known_workspaces:
        return
    flask_app()
    from mlflow.entities import Workspace
    from mlflow.exceptions import MlflowException
    from mlflow.server.workspace_helpers import _get_workspace_store

    store = _get_workspace_store()
    try:
        store.get_workspace(workspace)
    except MlflowException:
        try:
            store.create_workspace(Workspace(name=workspace, description=description))
        except MlflowException:
            store.get_workspace(workspace)  # Another worker won the race; it must exist now.
    default_experiment_id(workspace)
    with _lock:
        _known_workspaces.add(workspace)


def default_experiment_id(workspace: str) -> str:
    """Id of the project's `Default` experiment, which stands in for MLflow's experiment "0"."""
    if workspace in _default_experiments:
        return _default_experiments[workspace]
    from mlflow.exceptions import MlflowException
    from mlflow.server.handlers import _get_tracking_store
    from mlflow.utils.workspace_context import ServerWorkspaceContext

    store = _get_tracking_store()
    with ServerWorkspaceContext(workspace):
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
