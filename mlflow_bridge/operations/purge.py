"""Deleting a whole project's MLflow data: every row of its workspace, and its artifacts.

Which rows belong to the workspace, and deleting them, is the seam's (embedded/workspace_rows.py,
MLflow's own CASCADE first); then the artifact directory goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow_bridge.embedded import artifact_store, workspace_rows


@dataclass
class Inventory:
    """A workspace's rows by table, and its artifact files."""

    rows: dict[str, int] = field(default_factory=dict)
    artifact_files: int = 0
    artifact_bytes: int = 0

    @property
    def empty(self) -> bool:
        return not any(self.rows.values()) and not self.artifact_files


def inventory(workspace: str) -> Inventory:
    """Every row and artifact file of the workspace; touches nothing."""
    found = Inventory(rows=workspace_rows.counts(workspace))
    directory = artifact_store.workspace_directory(workspace)
    found.artifact_bytes, found.artifact_files = artifact_store.size(directory)
    return found


def purge(workspace: str) -> Inventory:
    """Delete the workspace's rows and artifacts; returns what was there. Raises
    RuntimeError when rows remain afterwards (nothing is then reported as purged)."""
    before = inventory(workspace)
    workspace_rows.delete(workspace)
    artifact_store.delete(artifact_store.workspace_directory(workspace))
    after = inventory(workspace)
    if not after.empty:
        raise RuntimeError(f"{workspace} still holds {after.rows} and "
                           f"{after.artifact_files} artifact files")  # fmt: skip
    return before
