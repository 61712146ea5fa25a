"""The route table: every route MLflow's Flask app serves, with the action it performs.

Deny by default: a request whose route is not in this table is refused. The table is keyed
by MLflow's own rule (as in `app.url_map`) with the `/api` or `/ajax-api` prefix removed, so
one row covers both prefixes. tests/test_routes.py fails when MLflow serves a route that has
no row, so an MLflow upgrade cannot open a hole silently.

Columns: method, rule, action, and `names`: the request fields that name an experiment or a
registered model, where the project-id suffix " (<id>)" is accepted and removed. Exceptions
carry `feature` (what a refusal names), `required` (body fields MLflow assumes), `body=FILE`
(an artifact streamed unread rather than a JSON body checked) or `body=OTLP` (spans, read
within the JSON limit and parsed by the endpoint), `headers` (request headers that carry
ids, checked and rewritten like body fields), `follows_source` (a model version read where
its models:/ source chain ends), `tags_job` (CI provenance), `run_author` (the run's
creator is the caller), `tells_author` (MLflow's app is told the caller, for what it records
itself), `keeps_user_tag` (mlflow.user cannot be deleted), `banner` (the UI's
page, which gets SharingHub's banner), `promotes` (what protected model alias it may touch) or
`server_artifacts` (MLflow writes artifacts itself). `area` is the GitLab feature a route
belongs to (EXPERIMENTS unless the row says REGISTRY, SITE or BOTH). BRIDGE_ANSWERS lists the
UI's reads the bridge answers itself. No other module matches a rule by its text: each reads
these columns.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from werkzeug.routing import Rule


class Action(enum.Enum):
    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REFUSED = "refused"

    @property
    def writes(self) -> bool:
        return self in (Action.CREATE, Action.UPDATE, Action.DELETE)


READ, CREATE, UPDATE, DELETE, REFUSED = Action


class Area(enum.Enum):
    """The GitLab feature a route belongs to: its access level (disabled, private, enabled)
    and the project's visibility decide who reads it (projects/visibility.py)."""

    EXPERIMENTS = "model_experiments"  # experiments, runs, artifacts, logged models, traces...
    REGISTRY = "model_registry"  # registered models, versions, aliases, prompts
    BOTH = "both"  # reads both (GraphQL): readable only where both are
    SITE = "site"  # the UI's page and files, server info: readable where either is


EXPERIMENTS, REGISTRY, BOTH, SITE = Area


class BodyKind(enum.Enum):
    """What the bridge does with a request's body before MLflow sees it."""

    # Read (at most MAX_JSON_BODY_SIZE), parsed and checked, whatever the method: MLflow
    # reads the body of a GET without a query string too.
    JSON = "json"
    # Streamed to MLflow unread, in constant memory: artifact files.
    FILE = "file"
    # A file MLflow reads whole into memory (it keeps at most 10 MB): passed on unread, but only
    # with a Content-Length of at most MAX_JSON_BODY_SIZE.
    BUFFERED_FILE = "buffered file"
    # Read (at most MAX_JSON_BODY_SIZE) and handed on as it is: OTLP spans, in protobuf or
    # JSON, which the endpoint itself parses and checks (otlp.py).
    OTLP = "otlp"
    # JSON, checked as above, holding a GraphQL request: a query that parses, variables an
    # object (MLflow's handler fails with a 500 on anything else).
    GRAPHQL = "graphql"


JSON, FILE, BUFFERED_FILE, OTLP, GRAPHQL = BodyKind


class Promotes(enum.Enum):
    """How a registry write may touch a protected model alias (promotion.py)."""

    ALIAS = "the alias the request names"  # set, moved or deleted
    VERSION_ALIASES = "the aliases of the version it deletes"
    MODEL_ALIASES = "the aliases of the registered model it deletes"
    STAGE = "the stage it moves a version to"  # Production is protected


ALIAS, VERSION_ALIASES, MODEL_ALIASES, STAGE = Promotes


@dataclass(frozen=True)
class Route:
    method: str
    rule: str
    action: Action
    names: tuple[str, ...] = ()
    # For refused routes: the feature the 403 names.
    feature: str = ""
    # Body fields MLflow needs but does not check for (it answers 500 without them).
    required: tuple[str, ...] = ()
    body: BodyKind = JSON
    # A run a CI job creates here gets the job's provenance tags (rewrite.tag_job_run).
    tags_job: bool = False
    # (WSGI environ key, request field): headers naming an object, checked like that field.
    headers: tuple[tuple[str, str], ...] = ()
    # The version named is read at the end of its models:/<name>/<version> source chain
    # (registry.follow_source): MLflow's server cannot follow one.
    follows_source: bool = False
    # The run's author is the caller, whatever the body says (authorship.stamp).
    run_author: bool = False
    # The caller's username reaches MLflow's app (policy.AUTHOR_ENVIRON_KEY), for authors it
    # records itself: OTLP spans (otlp.py), a model version's creator (registry.py).
    tells_author: bool = False
    # The tag naming a run's author (mlflow.user) may not be deleted (authorship.stamp).
    keeps_user_tag: bool = False
    # MLflow's UI page: SharingHub's banner is added to it (browser.with_banner).
    banner: bool = False
    # What protected model alias (or stage) it may touch: the CanPromoteModels permission.
    promotes: Promotes | None = None
    # The GitLab feature whose access level governs the route.
    area: Area = EXPERIMENTS
    # MLflow itself writes artifacts from the JSON body (quota.py counts them).
    server_artifacts: bool = False


NAME = ("name",)
EXPERIMENT_NAME = ("experiment_name",)
OTLP_HEADERS = (
    ("HTTP_X_MLFLOW_EXPERIMENT_ID", "experiment_id"),
    ("HTTP_X_MLFLOW_RUN_ID", "run_id"),
)

# fmt: off
ROUTES: list[Route] = [
    # --- UI, static files, server status -------------------------------------------------------
    Route("GET",    "/",                                                   READ, banner=True, area=SITE),
    Route("GET",    "/static-files/<path:path>",                           READ, area=SITE),
    Route("GET",    "/build/<path:filename>",                              READ, area=SITE),
    Route("GET",    "/health",                                             READ, area=SITE),
    Route("GET",    "/version",                                            READ, area=SITE),
    Route("GET",    "/3.0/mlflow/server-info",                             READ, area=SITE),
    # GraphQL only reads (its "mutations" are searches), scoped to the workspace. MLflow's
    # GraphQL handler reads a JSON body, so GET always failed there with a 500.
    Route("GET",    "/graphql",                                            REFUSED, feature="GraphQL over GET (send a POST)"),
    Route("POST",   "/graphql",                                            READ, required=("query",), body=GRAPHQL, area=BOTH),
    # --- Experiments ---------------------------------------------------------------------------
    Route("POST",   "/2.0/mlflow/experiments/create",                      CREATE, NAME),
    Route("POST",   "/2.0/mlflow/experiments/delete",                      DELETE),
    Route("POST",   "/2.0/mlflow/experiments/delete-experiment-tag",       UPDATE),
    Route("GET",    "/2.0/mlflow/experiments/get",                         READ),
    Route("GET",    "/2.0/mlflow/experiments/get-by-name",                 READ, EXPERIMENT_NAME),
    Route("POST",   "/2.0/mlflow/experiments/restore",                     UPDATE),
    Route("GET",    "/2.0/mlflow/experiments/search",                      READ),
    Route("POST",   "/2.0/mlflow/experiments/search",                      READ),
    Route("POST",   "/2.0/mlflow/experiments/search-datasets",             READ),
    Route("POST",   "/2.0mlflow/experiments/search-datasets",              READ),  # sic, in MLflow
    Route("POST",   "/2.0/mlflow/experiments/set-experiment-tag",          UPDATE),
    Route("POST",   "/2.0/mlflow/experiments/update",                      UPDATE, ("new_name",)),
    # --- Runs and metrics ----------------------------------------------------------------------
    Route("POST",   "/2.0/mlflow/runs/create",                             CREATE, tags_job=True, run_author=True),
    Route("POST",   "/2.0/mlflow/runs/create-promptlab-run",               CREATE, run_author=True, server_artifacts=True),
    Route("POST",   "/2.0/mlflow/runs/delete",                             DELETE),
    Route("POST",   "/2.0/mlflow/runs/delete-tag",                         UPDATE, keeps_user_tag=True),
    Route("GET",    "/2.0/mlflow/runs/get",                                READ),
    Route("POST",   "/2.0/mlflow/runs/log-batch",                          UPDATE),
    Route("POST",   "/2.0/mlflow/runs/log-inputs",                         UPDATE),
    Route("POST",   "/2.0/mlflow/runs/log-metric",                         UPDATE),
    Route("POST",   "/2.0/mlflow/runs/log-model",                          UPDATE),
    Route("POST",   "/2.0/mlflow/runs/log-parameter",                      UPDATE),
    Route("POST",   "/2.0/mlflow/runs/outputs",                            UPDATE),
    Route("POST",   "/2.0/mlflow/runs/restore",                            UPDATE),
    Route("POST",   "/2.0/mlflow/runs/search",                             READ),
    Route("POST",   "/2.0/mlflow/runs/set-tag",                            UPDATE),
    Route("POST",   "/2.0/mlflow/runs/update",                             UPDATE),
    Route("GET",    "/2.0/mlflow/metrics/get-history",                     READ),
    Route("GET",    "/2.0/mlflow/metrics/get-history-bulk",                READ),
    Route("GET",    "/2.0/mlflow/metrics/get-history-bulk-interval",       READ),
    # --- Artifacts (proxied: mlflow-artifacts:/workspaces/p-<id>/...) ---------------------------
    Route("GET",    "/2.0/mlflow/artifacts/list",                          READ),
    Route("POST",   "/2.0/mlflow/artifacts/presigned-download-url",        READ),
    Route("POST",   "/2.0/mlflow/artifacts/presigned-upload-url",          CREATE),
    Route("POST",   "/2.0/mlflow/upload-artifact",                         CREATE, body=BUFFERED_FILE),
    Route("GET",    "/2.0/mlflow-artifacts/artifacts",                     READ),
    Route("GET",    "/2.0/mlflow-artifacts/artifacts/<path:artifact_path>", READ, body=FILE),
    Route("PUT",    "/2.0/mlflow-artifacts/artifacts/<path:artifact_path>", CREATE, body=FILE),
    Route("DELETE", "/2.0/mlflow-artifacts/artifacts/<path:artifact_path>", DELETE),  # MLflow reads a JSON body
    Route("POST",   "/2.0/mlflow-artifacts/mpu/create/<path:artifact_path>", CREATE),  # JSON, checked
    Route("POST",   "/2.0/mlflow-artifacts/mpu/complete/<path:artifact_path>", CREATE),  # JSON, checked
    Route("POST",   "/2.0/mlflow-artifacts/mpu/abort/<path:artifact_path>", CREATE),  # JSON, checked
    Route("GET",    "/2.0/mlflow-artifacts/presigned/<path:artifact_path>", READ, body=FILE),
    Route("GET",    "/get-artifact",                                       READ),
    Route("GET",    "/model-versions/get-artifact",                        READ, follows_source=True, area=REGISTRY),
    Route("GET",    "/2.0/mlflow/get-trace-artifact",                      READ),
    Route("GET",    "/3.0/mlflow/get-trace-artifact",                      READ),
    # --- Logged models (MLflow 3) --------------------------------------------------------------
    Route("POST",   "/2.0/mlflow/logged-models",                           CREATE),
    Route("GET",    "/2.0/mlflow/logged-models/<model_id>",                READ),
    Route("PATCH",  "/2.0/mlflow/logged-models/<model_id>",                UPDATE),
    Route("DELETE", "/2.0/mlflow/logged-models/<model_id>",                DELETE),
    Route("GET",    "/2.0/mlflow/logged-models/<model_id>/artifacts/directories", READ),
    Route("GET",    "/2.0/mlflow/logged-models/<model_id>/artifacts/files", READ),
    Route("POST",   "/2.0/mlflow/logged-models/<model_id>/params",         UPDATE),
    Route("PATCH",  "/2.0/mlflow/logged-models/<model_id>/tags",           UPDATE),
    Route("DELETE", "/2.0/mlflow/logged-models/<model_id>/tags/<tag_key>", UPDATE),
    Route("POST",   "/2.0/mlflow/logged-models/search",                    READ),
    # --- Model registry (also prompts, which are registered models) ----------------------------
    Route("POST",   "/2.0/mlflow/registered-models/create",                CREATE, NAME, area=REGISTRY),
    Route("GET",    "/2.0/mlflow/registered-models/get",                   READ, NAME, area=REGISTRY),
    Route("POST",   "/2.0/mlflow/registered-models/rename",                UPDATE, ("name", "new_name"), area=REGISTRY),
    Route("PATCH",  "/2.0/mlflow/registered-models/update",                UPDATE, NAME, area=REGISTRY),
    Route("DELETE", "/2.0/mlflow/registered-models/delete",                DELETE, NAME, area=REGISTRY, promotes=MODEL_ALIASES),
    Route("GET",    "/2.0/mlflow/registered-models/search",                READ, area=REGISTRY),
    Route("GET",    "/2.0/mlflow/registered-models/get-latest-versions",   READ, NAME, area=REGISTRY),
    Route("POST",   "/2.0/mlflow/registered-models/get-latest-versions",   READ, NAME, area=REGISTRY),
    Route("POST",   "/2.0/mlflow/registered-models/set-tag",               UPDATE, NAME, area=REGISTRY),
    Route("DELETE", "/2.0/mlflow/registered-models/delete-tag",            UPDATE, NAME, area=REGISTRY),
    Route("GET",    "/2.0/mlflow/registered-models/alias",                 READ, NAME, area=REGISTRY),
    Route("POST",   "/2.0/mlflow/registered-models/alias",                 UPDATE, NAME, area=REGISTRY, promotes=ALIAS),
    Route("DELETE", "/2.0/mlflow/registered-models/alias",                 UPDATE, NAME, area=REGISTRY, promotes=ALIAS),
    Route("POST",   "/2.0/mlflow/model-versions/create",                   CREATE, NAME, area=REGISTRY, tells_author=True),
    Route("GET",    "/2.0/mlflow/model-versions/get",                      READ, NAME, area=REGISTRY),
    Route("PATCH",  "/2.0/mlflow/model-versions/update",                   UPDATE, NAME, area=REGISTRY),
    Route("DELETE", "/2.0/mlflow/model-versions/delete",                   DELETE, NAME, area=REGISTRY, promotes=VERSION_ALIASES),
    Route("GET",    "/2.0/mlflow/model-versions/search",                   READ, area=REGISTRY),
    Route("GET",    "/2.0/mlflow/model-versions/get-download-uri",         READ, NAME, area=REGISTRY),
    Route("POST",   "/2.0/mlflow/model-versions/transition-stage",         UPDATE, NAME, area=REGISTRY, promotes=STAGE),
    Route("POST",   "/2.0/mlflow/model-versions/set-tag",                  UPDATE, NAME, area=REGISTRY),
    Route("DELETE", "/2.0/mlflow/model-versions/delete-tag",               UPDATE, NAME, area=REGISTRY),
    # --- Traces --------------------------------------------------------------------------------
    Route("GET",    "/2.0/mlflow/traces",                                  READ),
    Route("POST",   "/2.0/mlflow/traces",                                  CREATE),
    Route("PATCH",  "/2.0/mlflow/traces/<request_id>",                     UPDATE),
    Route("GET",    "/2.0/mlflow/traces/<request_id>/info",                READ),
    Route("PATCH",  "/2.0/mlflow/traces/<request_id>/tags",                UPDATE),
    Route("DELETE", "/2.0/mlflow/traces/<request_id>/tags",                UPDATE),
    Route("POST",   "/2.0/mlflow/traces/delete-traces",                    DELETE),
    Route("POST",   "/2.0/mlflow/traces/link-prompts",                     UPDATE),
    Route("POST",   "/2.0/mlflow/traces/link-to-run",                      UPDATE),
    Route("GET",    "/2.0/mlflow/get-online-trace-details",                READ),  # Databricks only
    Route("GET",    "/2.0/mlflow/unified-traces",                          READ),  # Databricks only
    Route("POST",   "/3.0/mlflow/traces",                                  CREATE),
    Route("GET",    "/3.0/mlflow/traces/<trace_id>",                       READ),
    Route("GET",    "/3.0/mlflow/traces/get",                              READ),
    Route("GET",    "/3.0/mlflow/traces/batchGet",                         READ),
    Route("POST",   "/3.0/mlflow/traces/batchGetInfos",                    READ),
    Route("POST",   "/3.0/mlflow/traces/search",                           READ),
    Route("POST",   "/3.0/mlflow/traces/metrics",                          READ),
    Route("POST",   "/3.0/mlflow/traces/calculate-filter-correlation",     READ),
    Route("POST",   "/3.0/mlflow/traces/delete-traces",                    DELETE),
    Route("PATCH",  "/3.0/mlflow/traces/<trace_id>/tags",                  UPDATE),
    Route("DELETE", "/3.0/mlflow/traces/<trace_id>/tags",                  UPDATE),
    Route("POST",   "/3.0/mlflow/traces/<trace_id>/assessments",           CREATE),
    # OTLP ingestion: in `mlflow server` a FastAPI route, here registered on the Flask app.
    Route("POST",   "/v1/traces",                                          CREATE, body=OTLP, headers=OTLP_HEADERS, tells_author=True),
    Route("GET",    "/3.0/mlflow/traces/<trace_id>/assessments/<assessment_id>", READ),
    Route("PATCH",  "/3.0/mlflow/traces/<trace_id>/assessments/<assessment_id>", UPDATE),
    Route("DELETE", "/3.0/mlflow/traces/<trace_id>/assessments/<assessment_id>", DELETE),
    # --- Evaluation datasets -------------------------------------------------------------------
    Route("POST",   "/3.0/mlflow/datasets/create",                         CREATE),
    Route("GET",    "/3.0/mlflow/datasets/search",                         READ),
    Route("POST",   "/3.0/mlflow/datasets/search",                         READ),
    Route("GET",    "/3.0/mlflow/datasets/<dataset_id>",                   READ),
    Route("DELETE", "/3.0/mlflow/datasets/<dataset_id>",                   DELETE),
    Route("POST",   "/3.0/mlflow/datasets/<dataset_id>/add-experiments",   UPDATE),
    Route("POST",   "/3.0/mlflow/datasets/<dataset_id>/remove-experiments", UPDATE),
    Route("GET",    "/3.0/mlflow/datasets/<dataset_id>/experiment-ids",    READ),
    Route("GET",    "/3.0/mlflow/datasets/<dataset_id>/records",           READ),
    Route("POST",   "/3.0/mlflow/datasets/<dataset_id>/records",           UPDATE),
    Route("DELETE", "/3.0/mlflow/datasets/<dataset_id>/records",           UPDATE),
    Route("PATCH",  "/3.0/mlflow/datasets/<dataset_id>/tags",              UPDATE),
    Route("DELETE", "/3.0/mlflow/datasets/<dataset_id>/tags/<key>",        UPDATE),
    # --- GenAI review: scorers, issues, label schemas, review queues (scoped by experiment) ----
    Route("POST",   "/3.0/mlflow/scorers/register",                        CREATE),
    Route("GET",    "/3.0/mlflow/scorers/list",                            READ),
    Route("GET",    "/3.0/mlflow/scorers/get",                             READ),
    Route("GET",    "/3.0/mlflow/scorers/versions",                        READ),
    Route("DELETE", "/3.0/mlflow/scorers/delete",                          DELETE),
    Route("GET",    "/3.0/mlflow/scorers/online-configs",                  READ),
    Route("PUT",    "/3.0/mlflow/scorers/online-config",                   UPDATE),
    Route("POST",   "/3.0/mlflow/issues",                                  CREATE),
    Route("GET",    "/3.0/mlflow/issues/<issue_id>",                       READ),
    Route("PATCH",  "/3.0/mlflow/issues/<issue_id>",                       UPDATE),
    Route("POST",   "/3.0/mlflow/issues/search",                           READ),
    Route("POST",   "/3.0/mlflow/label-schemas/create",                    CREATE),
    Route("GET",    "/3.0/mlflow/label-schemas/get",                       READ),
    Route("GET",    "/3.0/mlflow/label-schemas/get-by-name",               READ),
    Route("GET",    "/3.0/mlflow/label-schemas/list",                      READ),
    Route("PATCH",  "/3.0/mlflow/label-schemas/update",                    UPDATE),
    Route("DELETE", "/3.0/mlflow/label-schemas/delete",                    DELETE),
    Route("POST",   "/3.0/mlflow/review-queues/create",                    CREATE),
    Route("GET",    "/3.0/mlflow/review-queues/get",                       READ),
    Route("GET",    "/3.0/mlflow/review-queues/get-by-name",               READ),
    Route("GET",    "/3.0/mlflow/review-queues/list",                      READ),
    Route("POST",   "/3.0/mlflow/review-queues/update",                    UPDATE),
    Route("POST",   "/3.0/mlflow/review-queues/delete",                    DELETE),
    Route("POST",   "/3.0/mlflow/review-queues/get-or-create-user",        CREATE),
    Route("POST",   "/3.0/mlflow/review-queues/items/add",                 UPDATE),
    Route("GET",    "/3.0/mlflow/review-queues/items/list",                READ),
    Route("POST",   "/3.0/mlflow/review-queues/items/remove",              UPDATE),
    Route("POST",   "/3.0/mlflow/review-queues/items/set-status",          UPDATE),
    # --- Refused: cannot be made safe per project (yet) ----------------------------------------
    Route("GET",    "/3.0/mlflow/workspaces",                              REFUSED, feature="workspace administration"),
    Route("POST",   "/3.0/mlflow/workspaces",                              REFUSED, feature="workspace administration"),
    Route("GET",    "/3.0/mlflow/workspaces/<workspace_name>",             REFUSED, feature="workspace administration"),
    Route("PATCH",  "/3.0/mlflow/workspaces/<workspace_name>",             REFUSED, feature="workspace administration"),
    Route("DELETE", "/3.0/mlflow/workspaces/<workspace_name>",             REFUSED, feature="workspace administration"),
    Route("GET",    "/2.0/mlflow/webhooks",                                REFUSED, feature="webhooks"),
    Route("POST",   "/2.0/mlflow/webhooks",                                REFUSED, feature="webhooks"),
    Route("GET",    "/2.0/mlflow/webhooks/<webhook_id>",                   REFUSED, feature="webhooks"),
    Route("PATCH",  "/2.0/mlflow/webhooks/<webhook_id>",                   REFUSED, feature="webhooks"),
    Route("DELETE", "/2.0/mlflow/webhooks/<webhook_id>",                   REFUSED, feature="webhooks"),
    Route("POST",   "/2.0/mlflow/webhooks/<webhook_id>/test",              REFUSED, feature="webhooks"),
    Route("GET",    "/2.0/mlflow/gateway-proxy",                           REFUSED, feature="the AI gateway"),
    Route("POST",   "/2.0/mlflow/gateway-proxy",                           REFUSED, feature="the AI gateway"),
    Route("GET",    "/3.0/mlflow/jobs/<job_id>",                           REFUSED, feature="server jobs"),
    Route("PATCH",  "/3.0/mlflow/jobs/cancel/<job_id>",                    REFUSED, feature="server jobs"),
    Route("POST",   "/3.0/mlflow/prompt-optimization/jobs",                REFUSED, feature="prompt optimisation jobs"),
    Route("GET",    "/3.0/mlflow/prompt-optimization/jobs/<job_id>",       REFUSED, feature="prompt optimisation jobs"),
    Route("DELETE", "/3.0/mlflow/prompt-optimization/jobs/<job_id>",       REFUSED, feature="prompt optimisation jobs"),
    Route("POST",   "/3.0/mlflow/prompt-optimization/jobs/<job_id>/cancel", REFUSED, feature="prompt optimisation jobs"),
    Route("GET",    "/3.0/mlflow/prompt-optimization/jobs/search",         REFUSED, feature="prompt optimisation jobs"),
    Route("POST",   "/3.0/mlflow/prompt-optimization/jobs/search",         REFUSED, feature="prompt optimisation jobs"),
    # These run LLM judges or generators as server jobs, with the server's credentials.
    Route("POST",   "/3.0/mlflow/scorer/invoke",                           REFUSED, feature="server-side scorer runs"),
    Route("POST",   "/3.0/mlflow/genai/evaluate/invoke",                   REFUSED, feature="server-side evaluation runs"),
    Route("POST",   "/3.0/mlflow/issues/invoke",                           REFUSED, feature="server-side issue detection"),
    Route("POST",   "/3.0/mlflow/demo/generate",                           REFUSED, feature="demo data"),
    Route("POST",   "/3.0/mlflow/demo/delete",                             REFUSED, feature="demo data"),
    Route("GET",    "/3.0/mlflow/ui-telemetry",                            REFUSED, feature="UI telemetry"),
    Route("POST",   "/3.0/mlflow/ui-telemetry",                            REFUSED, feature="UI telemetry"),
]
# fmt: on


class BridgeAnswer(enum.Enum):
    """A read of MLflow's UI that the bridge answers itself (ui_answers.py)."""

    WORKSPACE_LIST = "workspace list"
    WORKSPACE = "workspace"
    ASSISTANT_CONFIG = "assistant config"
    ASSISTANT_PROVIDERS = "assistant providers"
    GATEWAY_PROXY = "gateway proxy"


# GET (or HEAD) of these is answered before MLflow's routes are matched: MLflow's workspace
# handlers see every workspace, its assistant lives in its FastAPI server only, and the runs
# page asks the gateway proxy for its endpoints on its own (calls through it stay refused).
# `<workspace>` is the project's own workspace; any other stays refused by the table.
# fmt: off
BRIDGE_ANSWERS: dict[str, BridgeAnswer] = {
    "/3.0/mlflow/workspaces":                  BridgeAnswer.WORKSPACE_LIST,
    "/3.0/mlflow/workspaces/<workspace>":      BridgeAnswer.WORKSPACE,
    "/3.0/mlflow/assistant/config":            BridgeAnswer.ASSISTANT_CONFIG,
    "/3.0/mlflow/assistant/providers":         BridgeAnswer.ASSISTANT_PROVIDERS,
    "/2.0/mlflow/gateway-proxy":               BridgeAnswer.GATEWAY_PROXY,
}
# fmt: on

# Where a model version whose source is a run's artifact is read instead (registry.py).
RUN_ARTIFACT_RULE = "/get-artifact"

# Whole families refused by prefix, any method: what MLflow adds under them stays refused.
REFUSED_PREFIXES: dict[str, str] = {
    "/3.0/mlflow/gateway/": "the AI gateway and its secrets",
}

_API_PREFIX = re.compile(r"^/(?:api|ajax-api)(?=/)")
_TABLE: dict[tuple[str, str], Route] = {(route.method, route.rule): route for route in ROUTES}


def table_key(rule: str) -> str:
    """MLflow's rule without its `/api` or `/ajax-api` prefix: the table's key."""
    return _API_PREFIX.sub("", rule, count=1)


def route_for(
    rule: Rule | str, method: str, table: dict[tuple[str, str], Route] = _TABLE
) -> Route | None:
    """The table row for a matched MLflow rule and method; None means refused."""
    key = table_key(rule.rule if isinstance(rule, Rule) else rule)
    if method == "OPTIONS":
        # OPTIONS only describes a route: a read, wherever some method of it is served.
        served = [row for row in table.values() if row.rule == key and row.action is not REFUSED]
        return Route("OPTIONS", key, READ) if served else None
    # HEAD is GET without a body.
    if route := table.get(("GET" if method == "HEAD" else method, key)):
        return route
    for prefix, feature in REFUSED_PREFIXES.items():
        if key.startswith(prefix):
            return Route(method, key, REFUSED, feature=feature)
    return None


def uncovered_routes(
    rules: list[Rule], table: dict[tuple[str, str], Route] = _TABLE
) -> list[tuple[str, str]]:
    """Every (method, rule) MLflow serves that has no row: each would be refused."""
    return [
        (method, rule.rule)
        for rule in rules
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
        if route_for(rule, method, table) is None
    ]


def bridge_answer_for(method: str, rest: str, workspace: str) -> BridgeAnswer | None:
    """Which of BRIDGE_ANSWERS a request to `rest` in `workspace` is, or None."""
    if method not in ("GET", "HEAD"):
        return None
    key = table_key(rest)
    parent, _, last = key.rpartition("/")
    if last == workspace:
        key = f"{parent}/<workspace>"
    return BRIDGE_ANSWERS.get(key)
