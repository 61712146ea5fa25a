"""S3 artifacts as the embedded server reads them: a missing key is a 404, as a missing local
file is (MLflow's S3 repository lets botocore's "Not Found" become a 500)."""

from __future__ import annotations

import posixpath

from botocore.exceptions import ClientError
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class MissingArtifact(MlflowException):
    def __init__(self, path: str):
        super().__init__(
            f"No artifact {posixpath.basename(path)!r} at this path.",
            error_code=RESOURCE_DOES_NOT_EXIST,
        )


class S3Repository(S3ArtifactRepository):
    """MLflow's S3 repository, answering a missing artifact with RESOURCE_DOES_NOT_EXIST (and
    without the bucket's URI, which MLflow's message of a failed download names)."""

    def _download_file(self, remote_file_path, local_path):
        try:
            return super()._download_file(remote_file_path, local_path)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in MISSING:
                raise
            raise MissingArtifact(remote_file_path)

    def download_artifacts(self, artifact_path, dst_path=None):
        try:
            return super().download_artifacts(artifact_path, dst_path)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise MissingArtifact(artifact_path) from None


def register() -> None:
    """Serve `s3://` artifact destinations with S3Repository, in this process."""
    from mlflow.store.artifact.artifact_repository_registry import (
        _artifact_repository_registry,
    )

    _artifact_repository_registry.register("s3", S3Repository)
