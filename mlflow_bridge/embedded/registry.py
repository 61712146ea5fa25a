"""The model registry, for the edge: a version's artifacts where its source chain ends, the
aliases a version or model holds (protected aliases, edge/promotion.py), and who created a
version.

Who created a model version (its `user_id`, the UI's "Created by"): MLflow's handler passes no
user to its store, which leaves the column empty. `install` makes the store record the caller
the view names in the environ (policy.AUTHOR_ENVIRON_KEY, on routes whose row says
`tells_author`), prompts' versions included: they are model versions too.

Artifacts of a registered model version, as the UI's model page reads them.

MLflow's `model-versions/get-artifact` opens the version's download URI with the server's
own tracking URI, a database: for a `runs:/<run>/<path>` source (and a `models:/<name>/
<version>` or `models:/<name>@<alias>` one, which leads to it) a bare `mlflow server` 3.17
answers 500 naming its database. MLflow's client follows these URIs itself through the REST
API. For routes whose row says `follows_source`, the bridge follows the chain within the
project's registry, and reads a run's artifact through `get-artifact` (run_id, path) instead.
"""

from __future__ import annotations

import functools
import posixpath
from urllib.parse import parse_qsl, urlsplit

from flask import has_request_context, request
from mlflow.exceptions import MlflowException
from mlflow.utils.workspace_context import ServerWorkspaceContext, get_request_workspace
from sqlalchemy import text

from mlflow_bridge.edge.errors import BridgeError
from mlflow_bridge.edge.routes import RUN_ARTIFACT_RULE
from mlflow_bridge.embedded import policy
from mlflow_bridge.embedded.wrapping import wrap_once

MAX_HOPS = 10
_SET_CREATOR = (
    "UPDATE model_versions SET user_id = :user_id"
    " WHERE workspace = :workspace AND name = :name AND version = :version"
)


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
    return (name, version) if name and version.isdecimal() else None


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


def aliases_held(name: object, version: object, workspace: str) -> list[str]:
    """The aliases a model version holds (with `version`) or its registered model (`version`
    None); none when there is no such thing (MLflow then answers its own 404)."""
    from mlflow.server.handlers import _get_model_registry_store

    registry = _get_model_registry_store()
    with ServerWorkspaceContext(workspace):
        try:
            if version is not None:
                return list(registry.get_model_version(name, version).aliases)
            return list(registry.get_registered_model(name).aliases)
        except MlflowException:
            return []


def _with_creator(store, create_model_version):
    """The store's create_model_version, recording the request's author as the creator."""

    @functools.wraps(create_model_version)
    def created(*args, **kwargs):
        version = create_model_version(*args, **kwargs)
        author = request.environ.get(policy.AUTHOR_ENVIRON_KEY) if has_request_context() else None
        if author is None:  # not a request the view tells its author (an import, a command)
            return version
        row = {"user_id": author, "workspace": get_request_workspace(),
               "name": version.name, "version": int(version.version)}  # fmt: skip
        with store.engine.begin() as connection:
            connection.execute(text(_SET_CREATOR), row)
        return store.get_model_version(version.name, version.version)

    return created


def install() -> None:
    """Let the registry store record who creates a model version (see the module docstring)."""
    from mlflow.server.handlers import _get_model_registry_store

    store = _get_model_registry_store()
    wrap_once(store, "create_model_version", functools.partial(_with_creator, store))
