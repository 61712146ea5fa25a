"""Garbage collection in one project: what `mlflow gc` does, bound to one workspace.

Soft-deleted runs, logged models and experiments of the workspace (deleted at least
`older_than` ago) lose their artifacts and then their rows, through MLflow's store as
`mlflow gc` calls it (the seam's embedded/deleted.py). MLflow's `gc` itself
cannot run here: it resolves `mlflow-artifacts:` URIs through a tracking server's HTTP API.
Each artifact directory is resolved below the workspace's own root, or left alone. The
staging files of uploads whose worker died go too, once nothing has written to them for a day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from mlflow_bridge.embedded import artifact_store, deleted

# An upload in progress writes to its staging file all the time; a day of silence means its
# worker was killed (out of memory, SIGKILL) and nobody will finish or rename it.
ABANDONED_UPLOAD_AGE = timedelta(days=1)


@dataclass
class Collected:
    runs: list[str] = field(default_factory=list)
    logged_models: list[str] = field(default_factory=list)
    experiments: list[str] = field(default_factory=list)
    artifact_files: int = 0
    artifact_bytes: int = 0
    abandoned_uploads: int = 0


def _free(collected: Collected, uri: str, workspace: str, dry_run: bool) -> None:
    directory = artifact_store.directory_of(uri, workspace)
    if directory is None:
        return  # Not below this project's root: never ours to delete.
    size, count = artifact_store.size(directory)
    collected.artifact_bytes += size
    collected.artifact_files += count
    if not dry_run:
        artifact_store.delete(directory)


def collect(workspace: str, older_than: timedelta, *, dry_run: bool = False) -> Collected:
    """Permanently delete the workspace's soft-deleted objects older than `older_than`."""
    collected = Collected()
    found = {"run": collected.runs, "logged model": collected.logged_models,
             "experiment": collected.experiments}  # fmt: skip
    for item in deleted.soft_deleted(workspace, int(older_than.total_seconds() * 1000)):
        _free(collected, item.artifact_uri, workspace, dry_run)
        if not dry_run:
            deleted.hard_delete(workspace, item)
        found[item.kind].append(item.object_id)
    _free_abandoned_uploads(collected, workspace, dry_run)
    return collected


def _free_abandoned_uploads(collected: Collected, workspace: str, dry_run: bool) -> None:
    for stored in artifact_store.abandoned_uploads(workspace, ABANDONED_UPLOAD_AGE):
        collected.abandoned_uploads += 1
        collected.artifact_files += 1
        collected.artifact_bytes += stored.size
        if not dry_run:
            artifact_store.delete_file(stored.key)
