"""The seam to MLflow (mlflow_bridge/embedded/): what it relies on in the installed MLflow,
named in one place so that an upgrade fails here, loudly, before anything else; and its memos
of MLflow ids stay right when another process (`gc`, `purge_projects`) deletes for good."""

from __future__ import annotations

import ast
import functools
import importlib
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.store.workspace.abstract_store import WorkspaceDeletionMode
from sqlalchemy import Integer, String

from mlflow_bridge.embedded import mlflow_app
from tests.gitlab_double import GitLabDouble
from tests.inprocess import Tracking, new_member
from tests.test_imports import ROOT, mlflow_internals, mlflow_tables
from tests.test_imports import SEAM as SEAM_MODULE

SEAM = ROOT / "mlflow_bridge" / "embedded"

# Each name the seam imports from MLflow's non-public modules, or private anywhere in MLflow,
# and why. Complete both ways: the seam imports nothing else of the kind, and all of them exist
# in the installed MLflow.
PINNED_NAMES = {
    "mlflow.server.app": "the Flask app every request is dispatched to",
    "mlflow.server.handlers": "the module whose parse_dict name the parse hook replaces",
    "mlflow.server.handlers._get_tracking_store": "the tracking store (mlflow_app, owners, otlp)",
    "mlflow.server.handlers._get_model_registry_store": "the registry store",
    "mlflow.server.handlers.catch_mlflow_exception": "OTLP answers MLflow's errors as MLflow does",
    "mlflow.server.handlers.get_service_endpoints": "each protobuf route's request message",
    "mlflow.server.otel_api._convert_otlp_json_ids_to_base64": "OTLP/JSON span ids",
    "mlflow.server.workspace_helpers._get_workspace_store": "the workspace store",
    "mlflow.store.artifact.artifact_repository_registry._artifact_repository_registry": (
        "registering the S3 repository that answers a missing object with a 404"
    ),
    "mlflow.store.artifact.artifact_repository_registry.get_artifact_repository": "the import",
    "mlflow.store.artifact.s3_artifact_repo.S3ArtifactRepository": "subclassed for the 404",
    "mlflow.store.artifact.s3_artifact_repo._get_s3_client": "S3 listings of the artifact store",
    "mlflow.store.db.utils._initialize_tables": "`upgrade` on an empty database",
    "mlflow.store.db.utils._upgrade_db": "`upgrade` on an older schema",
    "mlflow.store.db.utils._verify_schema": "`upgrade --check`",
    "mlflow.store.db.utils.create_sqlalchemy_engine": "an engine as MLflow builds it",
    "mlflow.store.model_registry.dbmodels.models": "the import copies registry rows",
    "mlflow.store.tracking.dbmodels.models": "the import copies tracking rows",
    "mlflow.store.workspace.abstract_store.WorkspaceDeletionMode": "purge's CASCADE",
    "mlflow.entities.span.Span": "OTLP spans into MLflow's entities",
    "mlflow.prompt.constants.IS_PROMPT_TAG_KEY": "counts leave prompts out of models",
    "mlflow.prompt.constants.PROMPT_TEXT_TAG_KEY": "a model version that is a prompt's",
    "mlflow.prompt.constants._PROMPT_SOURCE_PLACEHOLDERS": "a prompt version's source",
    "mlflow.protos.databricks_pb2.INVALID_PARAMETER_VALUE": "OTLP's error codes",
    "mlflow.protos.databricks_pb2.RESOURCE_DOES_NOT_EXIST": "S3's and OTLP's 404",
    "mlflow.protos.mlflow_artifacts_pb2.MlflowArtifactsService": "request messages",
    "mlflow.protos.model_registry_pb2.ModelRegistryService": "request messages",
    "mlflow.protos.service_pb2.MlflowService": "request messages",
    "mlflow.tracing.constant.TRACE_RENDERER_ASSET_PATH": "the notebook trace renderer's page",
    "mlflow.tracing.utils.otlp.MLFLOW_EXPERIMENT_ID_HEADER": "OTLP's experiment header",
    "mlflow.tracing.utils.otlp.MLFLOW_RUN_ID_HEADER": "OTLP's run header",
    "mlflow.tracing.utils.otlp.OTLP_TRACES_PATH": "OTLP's route",
    "mlflow.utils.proto_json_utils.parse_dict": "MLflow's own JSON parse",
    "mlflow.utils.time.get_current_time_millis": "gc's age threshold, on MLflow's clock",
    "mlflow.utils.validation.invalid_value": "MLflow's words for a field of the wrong type",
    "mlflow.utils.workspace_context.ServerWorkspaceContext": "binding a request's workspace",
    "mlflow.utils.workspace_context.get_request_workspace": (
        "OTLP's workspace, and the workspace a trace's stored location must lie in"
    ),
    "mlflow.tracing.constant.TraceTagKey": "policy: trace tag keys, classified",
    "mlflow.tracing.constant.TraceMetadataKey": "policy: trace metadata keys, classified",
    "mlflow.tracing.constant.SpanAttributeKey": "OTLP's mlflow.traceTag.<key> prefix",
    "mlflow.tracing.constant.SpansLocation": "the spans locations the tracking store reads",
    "mlflow.utils.mlflow_tags.MLFLOW_USER": "policy: the author tag",
    "mlflow.utils.mlflow_tags.MLFLOW_ARTIFACT_LOCATION": "policy: a trace's location tag",
}
# What MLflow's server reads of its basic-auth app (mlflow.server.auth), which mlflow_app
# stubs as off: the names reached while it is off, and those only its own app reaches.
PINNED_BASIC_AUTH_READS = {
    "auth_config": "search_runs asks it on every call",
    "is_auth_enabled": "the gateway and the budgets ask it",
    "get_graphql_authorization_middleware": "each GraphQL call asks it",
    "filter_experiment_ids": "only once auth_config is set: never",
    "bootstrap_admin_user": "only `mlflow server --app-name basic-auth`",
    "get_flask_server_secret_key": "only `mlflow server --app-name basic-auth`",
}
BASIC_AUTH_READS = re.compile(r"from mlflow\.server\.auth import ([\w, ]+)|\bauth(?:_mod)?\.(\w+)")
# Private attributes the seam uses on MLflow's objects (not imported, so listed by hand).
PINNED_ATTRIBUTES = {
    "mlflow.store.tracking.sqlalchemy_store.SqlAlchemyStore": (
        "_get_deleted_runs", "_get_deleted_logged_models", "_hard_delete_run",
        "_hard_delete_logged_model", "_hard_delete_experiment",
        # wrapped on the built store (trace_spans.py)
        "_get_spans_with_trace_info",
    ),
    "mlflow.server.handlers": ("parse_dict", "initialize_backend_stores",
                               # replaced by the seam (promptlab.py, trace_locations.py)
                               "_create_promptlab_run_impl", "get_artifact_uri_for_trace",
                               "get_archive_uri_for_trace"),
    "mlflow.store.tracking.sqlalchemy_store": ("get_archive_uri_for_trace",),
    "mlflow.tracing.utils.artifact_utils": ("get_artifact_uri_for_trace",
                                            "get_archive_uri_for_trace"),
}  # fmt: skip
# What the seam uses on the built tracking store (set by its __init__, so not on the class).
PINNED_STORE_ATTRIBUTES = ("engine", "ManagedSessionMaker")
# The variables MLflow's server reads its configuration from (mlflow_app writes them).
PINNED_ENVIRONMENT = {
    "BACKEND_STORE_URI_ENV_VAR": "_MLFLOW_SERVER_FILE_STORE",
    "REGISTRY_STORE_URI_ENV_VAR": "_MLFLOW_SERVER_REGISTRY_STORE",
    "ARTIFACT_ROOT_ENV_VAR": "_MLFLOW_SERVER_ARTIFACT_ROOT",
    "SERVE_ARTIFACTS_ENV_VAR": "_MLFLOW_SERVER_SERVE_ARTIFACTS",
    "ARTIFACTS_DESTINATION_ENV_VAR": "_MLFLOW_SERVER_ARTIFACT_DESTINATION",
}
# The tables and columns the seam's SQL reads or writes (owners, activity, workspace_rows,
# deleted, registry).
PINNED_SCHEMA = {
    "experiments": {"experiment_id", "workspace", "lifecycle_stage", "last_update_time"},
    "runs": {"run_uuid", "experiment_id", "lifecycle_stage", "start_time", "end_time"},
    "logged_models": {"model_id", "experiment_id", "lifecycle_stage",
                      "last_updated_timestamp_ms"},
    "trace_info": {"request_id", "experiment_id", "timestamp_ms"},
    "evaluation_datasets": {"dataset_id", "workspace"},
    "registered_models": {"workspace", "name", "last_updated_time"},
    "registered_model_tags": {"workspace", "name", "key"},
    "model_versions": {"workspace", "name", "version", "user_id"},  # registry: the creator
    "workspaces": {"name"},
    "inputs": {"input_uuid", "source_id", "destination_id"},
    "input_tags": {"input_uuid"},
    "entity_associations": {"source_id", "destination_id"},
    "datasets": {"dataset_uuid"},
    "scheduler_leases": set(),
}  # fmt: skip
SQL_TABLE = re.compile(r"(?i)\b(?:from|join|update)\s+(\w+)")


def resolve(dotted: str) -> object:
    """The object a dotted name names in the installed MLflow (a module, or an attribute)."""
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError:
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)


def seam_strings() -> list[str]:
    return [
        node.value
        for path in SEAM.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


class TestWhatTheSeamReliesOn:
    def test_it_pins_every_internal_mlflow_name_the_seam_imports(self):
        found = mlflow_internals(ROOT, ("mlflow_bridge",), seam="mlflow_bridge.__nothing__")
        imported = {entry.split(" ")[1] for entry in found if entry.startswith(SEAM_MODULE)}

        assert imported == set(PINNED_NAMES)

    @pytest.mark.parametrize("dotted", sorted(PINNED_NAMES))
    def test_the_installed_mlflow_has_it(self, dotted):
        assert resolve(dotted) is not None

    @pytest.mark.parametrize(
        ("owner", "name"),
        [(owner, name) for owner, names in PINNED_ATTRIBUTES.items() for name in names],
    )
    def test_the_installed_mlflow_has_the_attribute(self, owner, name):
        assert callable(getattr(resolve(owner), name))

    def test_it_pins_every_name_mlflows_server_reads_of_its_basic_auth_app(self):
        import mlflow.server

        server = Path(mlflow.server.__file__).parent
        read = set()
        for source in server.rglob("*.py"):
            if "auth" in source.relative_to(server).parts[:1]:
                continue  # the basic-auth app itself
            for imported, attribute in BASIC_AUTH_READS.findall(source.read_text()):
                read.update(name.strip() for name in (imported or attribute).split(","))

        assert read == set(PINNED_BASIC_AUTH_READS)

    def test_the_basic_auth_stub_answers_what_is_read_while_it_is_off(self):
        mlflow_app.flask_app()
        import mlflow.server.auth as auth

        assert auth.auth_config is None
        assert auth.is_auth_enabled() is False
        assert auth.get_graphql_authorization_middleware() == []

    def test_the_built_tracking_store_has_what_the_seam_uses(self):
        store = mlflow_app.tracking_store()

        assert [name for name in PINNED_STORE_ATTRIBUTES if not hasattr(store, name)] == []

    @pytest.mark.parametrize("location", [None, "ARTIFACT_REPO", "TRACKING_STORE"])
    def test_the_store_reads_spans_where_trace_spans_lets_it_and_nowhere_else(self, location):
        """trace_spans.py refuses before MLflow's span read what that read fails on (an
        INTERNAL_ERROR): once MLflow reads artifact-held spans itself, this fails."""
        from mlflow.exceptions import MlflowTracingException
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        from mlflow_bridge.embedded.trace_spans import READ_BY_THE_STORE

        tags = {} if location is None else {"mlflow.trace.spansLocation": location}
        info = SimpleNamespace(trace_id="tr-0", tags=tags, trace_metadata={})
        read = functools.partial(SqlAlchemyStore._get_spans_with_trace_info,
                                 mlflow_app.tracking_store(), info, [])  # fmt: skip

        if location in READ_BY_THE_STORE:
            assert read() == []
        else:
            with pytest.raises(MlflowTracingException) as raised:
                read()
            assert raised.value.error_code == "INTERNAL_ERROR"

    def test_mlflows_server_reads_the_variables_the_seam_writes(self):
        from mlflow.server import constants

        assert {name: getattr(constants, name) for name in PINNED_ENVIRONMENT} == (
            PINNED_ENVIRONMENT
        )
        assert set(PINNED_ENVIRONMENT.values()) <= set(re.findall(
            r"_MLFLOW_SERVER_\w+", (SEAM / "mlflow_app.py").read_text()
        ))  # fmt: skip

    @pytest.mark.parametrize("table", sorted(PINNED_SCHEMA))
    def test_the_installed_schema_has_the_table_and_its_columns(self, table):
        tables = mlflow_tables_by_name()

        assert table in tables
        assert PINNED_SCHEMA[table] <= set(tables[table].c.keys())

    def test_it_pins_every_table_the_seams_sql_names(self):
        named = {
            table for text in seam_strings() for table in SQL_TABLE.findall(text)
        } & mlflow_tables()

        assert named <= set(PINNED_SCHEMA)

    def test_ids_it_remembers_are_never_drawn_again(self):
        """owners.py remembers owners of runs, logged models and (not on SQLite) experiments
        past a hard delete by another process: safe while the ids are never reused — UUID
        strings the server draws, and an integer experiment id from PostgreSQL's sequence."""
        tables = mlflow_tables_by_name()

        assert isinstance(tables["runs"].c.run_uuid.type, String)
        assert isinstance(tables["logged_models"].c.model_id.type, String)
        assert isinstance(tables["experiments"].c.experiment_id.type, Integer)
        assert tables["experiments"].c.experiment_id.autoincrement is True


def mlflow_tables_by_name() -> dict:
    mlflow_tables()
    from mlflow.store.db.base_sql_model import Base

    return dict(Base.metadata.tables)


CASCADE = WorkspaceDeletionMode.CASCADE


@pytest.fixture
def tracking(client, gitlab: GitLabDouble, settings) -> Tracking:
    """Quinn, a Developer of a new project, in-process (`.workspace`: the project's)."""
    settings.GITLAB_URL = gitlab.url
    return new_member(client, gitlab, 30, "quinn-seam", "seam/team")


def hard_delete_elsewhere(workspace: str, experiment_id: str) -> None:
    """What `gc` does in another process: this process's memos do not see it."""
    with mlflow_app.in_workspace(workspace):
        mlflow_app.tracking_store()._hard_delete_experiment(experiment_id)


@pytest.mark.django_db(transaction=True)
class TestMemosOfMlflowIds:
    def test_it_recreates_a_default_experiment_gc_deleted_in_another_process(self, tracking):
        status, first = tracking.get("experiments/get", experiment_id="0")
        assert status == 200
        tracking.post("experiments/delete", {"experiment_id": "0"})
        hard_delete_elsewhere(tracking.workspace, first["experiment"]["experiment_id"])

        status, run = tracking.post("runs/create", {"experiment_id": "0"})

        assert status == 200, run
        status, again = tracking.get("experiments/get", experiment_id="0")
        # A new Default (SQLite may give it the old id again): active, not the deleted one.
        assert again["experiment"]["name"] == "Default"
        assert again["experiment"]["lifecycle_stage"] == "active"
        assert run["run"]["info"]["experiment_id"] == again["experiment"]["experiment_id"]

    def test_it_recreates_a_workspace_purged_in_another_process(self, tracking, monkeypatch):
        """MLflow writes into a workspace without its row, but `usage` and `gc` list the
        workspaces MLflow knows: a project's must come back with it."""
        assert tracking.post("experiments/create", {"name": "before"})[0] == 200
        # `purge_projects` elsewhere; this worker's next look comes after the re-check time.
        mlflow_app.workspace_store().delete_workspace(tracking.workspace, CASCADE)
        monkeypatch.setattr(mlflow_app, "WORKSPACE_RECHECK_SECONDS", 0)

        status, created = tracking.post("experiments/create", {"name": "after"})

        assert status == 200, created
        assert tracking.workspace in mlflow_app.workspace_names()
