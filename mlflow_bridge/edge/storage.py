"""Where data lives is the server's business: artifact paths.

MLflow roots proxied artifact paths at `workspaces/<workspace>/`, but it does not normalise
them first. The bridge refuses, before MLflow sees them: dot segments (also percent-encoded,
once or twice), backslashes, NUL bytes, absolute paths, and deleting the root.

MLflow also reads some tags as storage locations (a trace's `mlflow.artifactLocation` says
where its spans are read from): clients may not set those (policy.py; the author stamp's walk
refuses them), and whatever a stored location says MLflow reads a trace's data only inside
the request's own workspace (embedded/trace_locations.py).
"""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

from mlflow_bridge.edge.errors import BridgeError

# Request fields (query or JSON) that hold an artifact path.
PATH_FIELDS = ("path", "artifact_path")
# Percent-decodings undone before a path is judged (`%252e` is `.` decoded twice).
_MAX_DECODINGS = 3


def fully_decoded(path: str) -> str:
    """`path` percent-decoded until nothing changes (at most _MAX_DECODINGS times): how a
    server that decodes again may read it (storage, embedded/trace_locations.py)."""
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
    decoded = fully_decoded(path)
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
