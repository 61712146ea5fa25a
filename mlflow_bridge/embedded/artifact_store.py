"""The artifact store below one project's workspace: list, measure and delete, local or S3.

Every operation takes a directory inside MLFLOW_ARTIFACTS_DESTINATION, always below
`workspaces/<workspace>/`, and touches nothing outside it. S3 prefixes always end with "/":
MLflow's own `S3ArtifactRepository.delete_artifacts` lists by a bare prefix, so deleting
`workspaces/p-1` that way would also delete `workspaces/p-10/...`.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

# How MLflow's server names proxied artifacts: mlflow-artifacts:/<path below the destination>.
PROXY_SCHEME = "mlflow-artifacts:"
# MLflow's local store writes an upload to a hidden file of this name beside its target and
# renames it once complete (mlflow/store/artifact/local_artifact_repo.py); listings skip it.
UPLOAD_STAGING_PREFIX = ".artifact.uploading."


@dataclass(frozen=True)
class StoredFile:
    key: str  # path below the destination, "/"-separated
    size: int


def _is_s3() -> bool:
    return settings.MLFLOW_ARTIFACTS_DESTINATION.startswith("s3://")


def _s3_bucket_and_prefix() -> tuple[str, str]:
    parts = urlsplit(settings.MLFLOW_ARTIFACTS_DESTINATION)
    return parts.netloc, parts.path.strip("/")


def _s3_client():
    from mlflow.store.artifact.s3_artifact_repo import _get_s3_client

    return _get_s3_client()


def _checked(relative: str) -> str:
    """A "/"-separated directory below the destination, with no way out of it."""
    parts = [part for part in relative.strip("/").split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"{relative!r} is not a directory below the artifact destination")
    return "/".join(parts)


def workspace_directory(workspace: str) -> str:
    """The project's artifact root, below the destination."""
    return _checked(f"workspaces/{workspace}")


def directory_of(artifact_uri: str, workspace: str) -> str | None:
    """The directory below the destination of an `mlflow-artifacts:/workspaces/<ws>/...` URI,
    or None when the URI is not inside `workspace`'s root (then it is none of ours to touch)."""
    if not artifact_uri.startswith(PROXY_SCHEME):
        return None
    path = urlsplit(artifact_uri).path
    try:
        directory = _checked(posixpath.normpath("/" + path))
    except ValueError:
        return None
    root = workspace_directory(workspace)
    return directory if directory.startswith(root + "/") else None


def files(directory: str) -> Iterator[StoredFile]:
    """Every file below `directory` (relative to the destination), with its size."""
    directory = _checked(directory)
    if _is_s3():
        bucket, prefix = _s3_bucket_and_prefix()
        full = f"{prefix}/{directory}/" if prefix else f"{directory}/"
        pages = _s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=full)
        for page in pages:
            for item in page.get("Contents", []):
                yield StoredFile(item["Key"].removeprefix(f"{prefix}/"), int(item["Size"]))
        return
    base = Path(settings.MLFLOW_ARTIFACTS_DESTINATION)
    for root, _, names in os.walk(base / directory):
        for name in names:
            path = Path(root) / name
            yield StoredFile(path.relative_to(base).as_posix(), path.stat().st_size)


def size(directory: str) -> tuple[int, int]:
    """(bytes, files) below `directory`."""
    total = count = 0
    for stored in files(directory):
        total += stored.size
        count += 1
    return total, count


def delete(directory: str) -> int:
    """Delete everything below `directory`; returns the number of files deleted."""
    directory = _checked(directory)
    if _is_s3():
        bucket, prefix = _s3_bucket_and_prefix()
        client = _s3_client()
        keys = [f"{prefix}/{stored.key}" if prefix else stored.key for stored in files(directory)]
        for start in range(0, len(keys), 1000):  # S3's DeleteObjects takes 1000 keys at most
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)
    base = Path(settings.MLFLOW_ARTIFACTS_DESTINATION)
    path = base / directory
    count = sum(1 for _ in files(directory))
    if path.is_dir():
        shutil.rmtree(path)
    # Directories left empty (a run's, once its artifacts are gone), up to the workspace's.
    keep = base / "/".join(directory.split("/")[:2])
    for parent in path.parents:
        if parent == keep or keep not in parent.parents:
            break
        if parent.is_dir():
            if any(parent.iterdir()):
                break
            parent.rmdir()
    return count


def abandoned_uploads(workspace: str, untouched_for: timedelta) -> list[StoredFile]:
    """Staging files of the workspace's uploads not written to for `untouched_for`: their
    worker died mid-upload. S3 has none: an object appears whole or not at all."""
    if _is_s3():
        return []
    base = Path(settings.MLFLOW_ARTIFACTS_DESTINATION)
    cutoff = time.time() - untouched_for.total_seconds()
    return [
        stored
        for stored in files(workspace_directory(workspace))
        if posixpath.basename(stored.key).startswith(UPLOAD_STAGING_PREFIX)
        and (base / stored.key).stat().st_mtime < cutoff
    ]


def delete_file(key: str) -> None:
    """Delete one local file below the destination."""
    (Path(settings.MLFLOW_ARTIFACTS_DESTINATION) / _checked(key)).unlink(missing_ok=True)
