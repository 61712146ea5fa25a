"""What clients may set: the tag and metadata keys the server owns, as data.

Three owners, for every key a client can send in any shape (a `tags` list or mapping, a
set-tag body, `trace_metadata` / `request_metadata`, OTLP `mlflow.traceTag.<key>` attributes,
JSON carried inside a string field):

- SERVER: where data lives (MLflow reads these tags as storage locations) and which CI job
  made a run (the bridge's own tags). A client value is refused with a 400 naming the field.
- AUTHOR: who did it. A client value is replaced by the caller's GitLab username.
- CLIENT: everything else, stored as sent.

Built from MLflow's own constants (mlflow.utils.mlflow_tags, TraceTagKey, TraceMetadataKey)
and request messages (FIELDS: every field of a served request message whose name speaks of a
user, an author, a location or a source): tests/test_policy.py fails when an MLflow upgrade
adds a constant or such a field nobody classified here.
"""

from __future__ import annotations

import enum
import re

from mlflow.tracing.constant import TraceMetadataKey, TraceTagKey
from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION, MLFLOW_USER

from mlflow_bridge.edge.rewrite import JOB_TAG_KEYS


class Owner(enum.Enum):
    CLIENT = "client"
    AUTHOR = "author"
    SERVER = "server"


USER_TAG = MLFLOW_USER
# The caller's GitLab username in the environ MLflow's app sees, for endpoints that stamp it
# themselves (otlp.py): a WSGI key no HTTP header can spell.
AUTHOR_ENVIRON_KEY = "sharinghub.author"
# Why each server key is the server's: the 400 says it.
SERVER_KEYS: dict[str, str] = {
    MLFLOW_ARTIFACT_LOCATION: "a storage location",
    TraceTagKey.SPANS_LOCATION: "a storage location",
    TraceTagKey.ARCHIVE_LOCATION: "a storage location",
    TraceTagKey.ARCHIVAL_FAILURE: "set by MLflow's trace archival",
    TraceMetadataKey.AUTH_USER_ID: "set by MLflow's auth server, which this service is not",
    **dict.fromkeys(JOB_TAG_KEYS, "CI job provenance"),
}
AUTHOR_KEYS = frozenset({USER_TAG, TraceMetadataKey.AUTH_USERNAME})
# Any `mlflow.…Location` key MLflow adds later is a storage location too.
LOCATION_KEY = re.compile(r"^mlflow\.(?:[\w.]*\.)?\w*[lL]ocation$")
# MLflow's constants a client may set, classified one by one (tests/test_policy.py).
CLIENT_KEYS = frozenset({
    "genai_evaluate", "issue_detection", "mlflow.autologging", "mlflow.customView.view",
    "mlflow.data.context", "mlflow.databricks.cluster.id", "mlflow.databricks.gitRepoCommit",
    "mlflow.databricks.gitRepoProvider", "mlflow.databricks.gitRepoReference",
    "mlflow.databricks.gitRepoReferenceType", "mlflow.databricks.gitRepoRelativePath",
    "mlflow.databricks.gitRepoStatus", "mlflow.databricks.gitRepoUrl", "mlflow.databricks.jobID",
    "mlflow.databricks.jobRunID", "mlflow.databricks.jobType", "mlflow.databricks.jobTypeInfo",
    "mlflow.databricks.modelServingEndpointName", "mlflow.databricks.notebook.commandID",
    "mlflow.databricks.notebookID", "mlflow.databricks.notebookPath", "mlflow.databricks.runURL",
    "mlflow.databricks.sgc.resumeRun.jobRunId", "mlflow.databricks.shellJobID",
    "mlflow.databricks.shellJobRunID", "mlflow.databricks.webappURL",
    "mlflow.databricks.workspaceID", "mlflow.databricks.workspaceURL", "mlflow.docker.image.id",
    "mlflow.docker.image.uri", "mlflow.eval.requestId",
    "mlflow.experiment.databricksTelemetryDestinationId",
    "mlflow.experiment.databricksTraceAnnotationsTable",
    "mlflow.experiment.databricksTraceDestinationPath",
    "mlflow.experiment.databricksTraceLogStorageTable",
    "mlflow.experiment.databricksTraceSpanStorageTable", "mlflow.experiment.isGateway",
    "mlflow.experiment.primaryMetric.greaterIsBetter", "mlflow.experiment.primaryMetric.name",
    "mlflow.experiment.sourceId", "mlflow.experiment.sourceType", "mlflow.gateway.caller",
    "mlflow.gateway.endpointId", "mlflow.gateway.requestType",
    "mlflow.genaiEvaluate.agent.digest", "mlflow.genaiEvaluate.agent.function",
    "mlflow.genaiEvaluate.agent.uri", "mlflow.genaiEvaluate.datasetIdentity",
    "mlflow.genaiEvaluate.jobId", "mlflow.genaiEvaluate.scorersDigest",
    "mlflow.issueDetection.jobId", "mlflow.latestOnlineScoring.session.checkpoint",
    "mlflow.latestOnlineScoring.trace.checkpoint", "mlflow.latest_checkpoint_artifact",
    "mlflow.linkedPrompts", "mlflow.log-model.history", "mlflow.loggedArtifacts",
    "mlflow.loggedImages", "mlflow.model.isExternal", "mlflow.modelId", "mlflow.modelVersions",
    "mlflow.note.content", "mlflow.parentRunId", "mlflow.project.backend",
    "mlflow.project.entryPoint", "mlflow.project.env", "mlflow.runName", "mlflow.runSourceType",
    "mlflow.runType", "mlflow.source.git.branch", "mlflow.source.git.commit",
    "mlflow.source.git.diff", "mlflow.source.git.dirty", "mlflow.source.git.repoURL",
    "mlflow.source.name", "mlflow.source.type", "mlflow.sourceRun", "mlflow.trace.cost",
    "mlflow.trace.infoFinalized", "mlflow.trace.session", "mlflow.trace.sizeBytes",
    "mlflow.trace.sizeStats", "mlflow.trace.sourceScorer", "mlflow.trace.tokenUsage",
    # The GenAI app's end user (OTel's user.id), not who logged the trace.
    "mlflow.trace.user",
    "mlflow.traceInputs", "mlflow.traceName", "mlflow.traceOutputs", "test",
})  # fmt: skip


# Request message fields (protobuf names, at any depth of a served route's message) that say
# who did something, where data lives or where it comes from.
FIELDS: dict[str, Owner] = {
    # Who did it: the caller (authorship.py), at the top of a write's body.
    "user_id": Owner.AUTHOR,
    "created_by": Owner.AUTHOR,
    "updated_by": Owner.AUTHOR,
    "completed_by": Owner.AUTHOR,
    # An assessment source's id: the caller when the source is HUMAN, else a judge's name.
    "source_id": Owner.AUTHOR,
    # MLflow refuses a client's artifact location with workspaces on; an archival location
    # is only set by workspace administration, which the route table refuses.
    "artifact_location": Owner.SERVER,
    "location": Owner.SERVER,
    # Sources and trace locations name objects: ownership.py checks they are this project's.
    "source": Owner.CLIENT,
    "source_run_id": Owner.CLIENT,
    "trace_location": Owner.CLIENT,
    "locations": Owner.CLIENT,  # a search's scope, read only
    "source_type": Owner.CLIENT,
    # Databricks-only or refused routes' fields (nothing here serves them).
    "source_databricks_request_id": Owner.CLIENT,
    "source_inference_table": Owner.CLIENT,
    "source_prompt_uri": Owner.CLIENT,
    "resource_id": Owner.CLIENT,
    "resource_type": Owner.CLIENT,
    # People a review queue is assigned to, named by the caller: not authorship.
    "user": Owner.CLIENT,
    "users": Owner.CLIENT,
    "update_users": Owner.CLIENT,
    "new_owner": Owner.CLIENT,
    "order_by": Owner.CLIENT,
}
# Field names the upgrade test looks for in MLflow's request messages.
FIELD_PATTERN = re.compile(r"user|author|_by$|location|uri|source|owner")


def owner_of(key: str) -> Owner:
    """Who may set the tag or metadata key `key`."""
    if key in AUTHOR_KEYS:
        return Owner.AUTHOR
    if key in SERVER_KEYS or LOCATION_KEY.match(key):
        return Owner.SERVER
    return Owner.CLIENT


def why_servers(key: str) -> str:
    return SERVER_KEYS.get(key, "a storage location")


def refusal_message(field: str, key: str) -> str:
    """The 400's words for a client-set server key, naming where it was found."""
    return (
        f"{field} {key!r} is set by the server only ({why_servers(key)}): "
        "remove it from the request."
    )
