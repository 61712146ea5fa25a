"""Artifacts of a registered model version, as the UI's model page reads them.

MLflow's `model-versions/get-artifact` opens the version's download URI with the server's
own tracking URI, a database: for a `runs:/<run>/<path>` source (and a `models:/<name>/
<version>` or `models:/<name>@<alias>` one, which leads to it) a bare `mlflow server` 3.17
answers 500 naming its database. MLflow's client follows these URIs itself through the REST
API. For routes whose row says `follows_source`, the bridge follows the chain within the
project's registry, and reads a run's artifact through `get-artifact` (run_id, path) instead.
"""

from __future__ import annotations

import posixpath
from urllib.parse import parse_qsl, urlsplit

from mlflow.exceptions import MlflowException
from mlflow.utils.workspace_context import ServerWorkspaceContext

from mlflow_bridge.edge.errors import BridgeError
from mlflow_bridge.edge.routes import RUN_ARTIFACT_RULE

MAX_HOPS = 10


def _next_version(registry, uri: str) -> tuple[str, str] | None:
    """The (name, version) a `models:/` download URI names in the registry, or None."""
    parts = urlsplit(uri)
    if parts.scheme != "models":
        return None
    reference = (parts.netloc + parts.path).strip("/")
    name, at, alias = reference.partition("@")
    if at and name and alias:
        return name, str(registry.get_model_version_by_alias(name, alias).version)
    name, _, version = reference.rpartition("/")
    return (name, version) if name and version.isdigit() else None


def resolved(name: str, version: str, workspace: str) -> tuple[str, str, str | None]:
    """The last version of the chain `name`/`version` starts, and its download URI (None
    when there is no such version: MLflow answers its own 404)."""
    from mlflow.server.handlers import _get_model_registry_store

    registry = _get_model_registry_store()
    with ServerWorkspaceContext(workspace):
        for _ in range(MAX_HOPS):
            try:
                uri = registry.get_model_version_download_uri(name, version)
                following = _next_version(registry, uri)
            except MlflowException:
                return name, version, None
            if following is None:
                return name, version, uri
            name, version = following
    raise BridgeError(
        "INVALID_PARAMETER_VALUE",
        f"Model version sources chain more than {MAX_HOPS} models:/ references.",
    )


def follow_source(path_info: str, query_string: str, workspace: str) -> tuple[str, dict | None]:
    """Where to read a version's artifact: (path_info, new query fields), or (path_info, None)
    when the request stays as it is."""
    fields = dict(parse_qsl(query_string, keep_blank_values=True))
    name, version, path = fields.get("name"), fields.get("version"), fields.get("path")
    if not name or not version or path is None:
        return path_info, None
    name, version, uri = resolved(name, version, workspace)
    parts = urlsplit(uri or "")
    if parts.scheme == "runs":
        run_id, _, below = (parts.netloc + parts.path).strip("/").partition("/")
        return RUN_ARTIFACT_RULE, {"run_id": run_id, "path": posixpath.join(below, path)}
    if (name, version) == (fields["name"], fields["version"]):
        return path_info, None
    return path_info, {**fields, "name": name, "version": version}
