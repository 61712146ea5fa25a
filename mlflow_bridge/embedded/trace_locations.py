"""A trace's stored location is read only inside the request's own workspace.

MLflow reads a trace's spans where its tags say (`mlflow.artifactLocation`, and
`mlflow.trace.archiveLocation` for archived spans). Clients may not set those tags
(policy.py), but a stored one may say anything: data imported from mlflow-sharinghub, or
written before the bridge refused them. `install` wraps each function through which MLflow
turns a trace's tags into a location, where its server and store call it, so that a location
outside `MLFLOW_ARTIFACTS_DESTINATION/workspaces/<request workspace>/`, however spelt, is a
404 (as a missing trace) before MLflow reads a byte.
"""

from __future__ import annotations

import importlib
import os
from urllib.parse import urlsplit

from django.conf import settings
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.utils.workspace_context import get_request_workspace

from mlflow_bridge.edge.storage import fully_decoded
from mlflow_bridge.embedded.wrapping import wrap_once

# Schemes MLflow's server resolves below its artifact destination (handlers.py,
# _is_servable_proxied_run_artifact_root); this service only ever writes mlflow-artifacts:.
PROXIED_SCHEMES = ("mlflow-artifacts", "http", "https")


def _canonical(uri: str) -> str | None:
    """One spelling per place: a local path made absolute with links resolved, a remote URI
    without dot or empty segments; None when a remote path climbs with '..'."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file") and parts.netloc in ("", "localhost"):
        path = fully_decoded(parts.path) if parts.scheme else uri
        return "file:" + os.path.realpath(path)
    segments = fully_decoded(parts.path).split("/")
    if ".." in segments:
        return None
    kept = "/".join(segment for segment in segments if segment not in ("", "."))
    return f"{parts.scheme}://{parts.netloc}/{kept}"


def within_workspace(uri: str, workspace: str) -> bool:
    """Whether the storage location `uri` lies inside the workspace's artifact root, however
    it is spelt: proxied (mlflow-artifacts:, http), file:, a plain or relative path, s3:."""
    destination = settings.MLFLOW_ARTIFACTS_DESTINATION.rstrip("/")
    parts = urlsplit(uri)
    if parts.scheme in PROXIED_SCHEMES:
        if parts.scheme != "mlflow-artifacts":
            return False  # never written by this service: a client's or another server's
        uri = f"{destination}/{parts.path.lstrip('/')}"
    location, root = _canonical(uri), _canonical(f"{destination}/workspaces/{workspace}")
    return location is not None and root is not None and location.startswith(root + "/")


def _checked_location(locate):
    """`locate` (trace info → its storage URI), refusing a URI outside the request's workspace."""

    def checked(trace_info):
        uri = locate(trace_info)
        workspace = get_request_workspace()
        if workspace is not None and not within_workspace(uri, workspace):
            raise MlflowException(f"Trace {trace_info.trace_id!r} has no data in this project.",
                                  error_code=RESOURCE_DOES_NOT_EXIST)  # fmt: skip
        return uri

    return checked


# Every (module, name) through which MLflow turns a trace's tags into a storage location.
LOCATION_READERS = (
    ("mlflow.tracing.utils.artifact_utils", "get_artifact_uri_for_trace"),
    ("mlflow.tracing.utils.artifact_utils", "get_archive_uri_for_trace"),
    ("mlflow.server.handlers", "get_artifact_uri_for_trace"),
    ("mlflow.server.handlers", "get_archive_uri_for_trace"),
    ("mlflow.store.tracking.sqlalchemy_store", "get_archive_uri_for_trace"),
)


def install() -> None:
    """Wrap MLflow's trace-location functions where its server and store call them."""
    for module_name, name in LOCATION_READERS:
        wrap_once(importlib.import_module(module_name), name, _checked_location)
