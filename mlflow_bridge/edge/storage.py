"""Where data lives is the server's business: artifact paths and storage-location tags.

MLflow roots proxied artifact paths at `workspaces/<workspace>/`, but it does not normalise
them first. The bridge refuses, before MLflow sees them: dot segments (also percent-encoded,
once or twice), backslashes, NUL bytes, absolute paths, and deleting the root.

MLflow also reads some tags as storage locations (a trace's `mlflow.artifactLocation` says
where its spans are read from). Clients may not set or change those, at creation or later;
nor the tags that record which CI job created a run.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote

from mlflow_bridge.edge.errors import BridgeError
from mlflow_bridge.edge.rewrite import JOB_TAG_KEYS

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


# mlflow.artifactLocation, mlflow.trace.spansLocation, mlflow.trace.archiveLocation, and any
# such key MLflow adds later.
RESERVED_TAG = re.compile(r"^mlflow\.(?:[\w.]*\.)?\w*[lL]ocation$")


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
        if RESERVED_TAG.match(key) or key in JOB_TAG_KEYS:
            raise BridgeError(
                "INVALID_PARAMETER_VALUE",
                f"Tag {key!r} is set by the server only (a storage location or CI job provenance).",
            )
