"""Where data lives is the server's business: artifact paths and storage-location tags.

MLflow roots proxied artifact paths at `workspaces/<workspace>/`, but it does not normalise
them first. The bridge refuses, before MLflow sees them: dot segments (also percent-encoded,
once or twice), backslashes, NUL bytes, absolute paths, and deleting the root.

MLflow also reads some tags as storage locations (a trace's `mlflow.artifactLocation` says
where its spans are read from). Clients may not set or change those, at creation or later;
nor the tags that record which CI job created a run (policy.py lists them). And whatever a
stored location says (imported, or written before this check existed), MLflow reads a trace's
data only inside the request's own workspace: `install` wraps the two functions through which
MLflow turns a trace's tags into a location (`within_workspace`).
"""

from __future__ import annotations

import importlib
import os
import posixpath
from urllib.parse import unquote, urlsplit

from django.conf import settings

from mlflow_bridge import policy
from mlflow_bridge.errors import BridgeError

# Request fields (query or JSON) that hold an artifact path.
PATH_FIELDS = ("path", "artifact_path")
_MAX_DECODINGS = 3


def _fully_decoded(path: str) -> str:
    for _ in range(_MAX_DECODINGS):
        decoded = unquote(path)
        if decoded == path:
            return path
        path = decoded
    return path


def _refuse(path: str, why: str) -> BridgeError:
    return BridgeError(
        "INVALID_PARAMETER_VALUE",
        f"Artifact path {path[:200]!r} {why}: use a relative path below the run or model.",
    )


def check_artifact_path(path: str, *, deleting: bool = False) -> None:
    """Refuse a path that could leave the project's artifact root or name the root itself."""
    decoded = _fully_decoded(path)
    if "\\" in decoded or "\x00" in decoded:
        raise _refuse(path, "contains a backslash or a NUL byte")
    # A single leading slash is how some clients spell a relative path; `//x` is not.
    if decoded.startswith("//") and decoded.strip("/"):
        raise _refuse(path, "is absolute")
    segments = decoded.strip("/").split("/")
    if ".." in segments:
        raise _refuse(path, "climbs out with '..'")
    if deleting:
        normalized = posixpath.normpath("/" + decoded).strip("/")
        parts = normalized.split("/") if normalized else []
        if not parts or (parts[0] == "workspaces" and len(parts) <= 2):
            raise _refuse(path, "is the project's artifact root, which cannot be deleted")


def check_artifact_fields(fields: dict[str, object]) -> None:
    for field in PATH_FIELDS:
        if isinstance(value := fields.get(field), str):
            check_artifact_path(value)


def _tag_keys(document: object, inside: str = ""):
    """Every tag key in a JSON document: a set-tag body's `key`, `{"key": k}` items of a
    `tags` list, and `"tags": {k: v}` mappings. Metric and param keys are not tags."""
    if isinstance(document, list):
        for item in document:
            yield from _tag_keys(item, inside)
    elif isinstance(document, dict):
        if inside in ("", "tags") and isinstance(key := document.get("key"), str):
            yield key
        for field, value in document.items():
            if field == "tags" and isinstance(value, dict):
                yield from (k for k in value if isinstance(k, str))
            if isinstance(value, list | dict):
                yield from _tag_keys(value, field)


def check_reserved_tags(document: dict[str, object]) -> None:
    """Refuse storage-location tags, and the CI job tags only the bridge sets (tag_job_run)."""
    for key in _tag_keys(document):
        if policy.owner_of(key) is policy.Owner.SERVER:
            raise BridgeError("INVALID_PARAMETER_VALUE", policy.refusal_message("Tag", key))


# Schemes MLflow's server resolves below its artifact destination (handlers.py,
# _is_servable_proxied_run_artifact_root); this service only ever writes mlflow-artifacts:.
PROXIED_SCHEMES = ("mlflow-artifacts", "http", "https")


def _canonical(uri: str) -> str | None:
    """One spelling per place: a local path made absolute with links resolved, a remote URI
    without dot or empty segments; None when a remote path climbs with '..'."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file") and parts.netloc in ("", "localhost"):
        path = _fully_decoded(parts.path) if parts.scheme else uri
        return "file:" + os.path.realpath(path)
    segments = _fully_decoded(parts.path).split("/")
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
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
        from mlflow.utils.workspace_context import get_request_workspace

        uri = locate(trace_info)
        workspace = get_request_workspace()
        if workspace is not None and not within_workspace(uri, workspace):
            raise MlflowException(f"Trace {trace_info.trace_id!r} has no data in this project.",
                                  error_code=RESOURCE_DOES_NOT_EXIST)  # fmt: skip
        return uri

    checked.sharinghub_checked = True
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
        module = importlib.import_module(module_name)
        function = getattr(module, name)
        if not getattr(function, "sharinghub_checked", False):
            setattr(module, name, _checked_location(function))
