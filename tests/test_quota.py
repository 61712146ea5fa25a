"""PROJECT_ARTIFACT_QUOTA_BYTES: uploads beyond it are refused before MLflow reads them;
reads and deletes always work. Quinn owns <g>/team/churn."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from projects.models import ProjectUsage
from tests.gitlab_double import GitLabDouble
from tests.inprocess import Tracking

_groups = itertools.count()
LIMIT = 10_000

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quota_settings(settings, gitlab):
    settings.GITLAB_URL = gitlab.url
    settings.PROJECT_ARTIFACT_QUOTA_BYTES = LIMIT


@pytest.fixture
def run(client, gitlab: GitLabDouble) -> tuple[Tracking, str, Path, str]:
    """(tracking, artifact prefix of a new run, its directory, project path)."""
    top = f"quota{next(_groups)}"
    quinn = gitlab.add_user(f"quinn-{top}")
    project = gitlab.add_project(f"{top}/team/churn")
    project.direct[quinn.id] = 30
    tracking = Tracking(client, project.path, quinn.token)
    tracking.username = quinn.username
    experiment_id, run_id = tracking.new_run("quota")
    directory = (Path(django_settings.MLFLOW_ARTIFACTS_DESTINATION) / "workspaces"
                 / f"p-{project.id}" / experiment_id / run_id / "artifacts")  # fmt: skip
    return tracking, f"{experiment_id}/{run_id}/artifacts", directory, project.path


class TestQuota:
    def test_it_accepts_uploads_up_to_the_limit_and_counts_them(self, run):
        tracking, prefix, directory, _ = run

        assert tracking.artifact("PUT", f"{prefix}/a.bin", b"a" * 6000)[0] == 200
        assert tracking.artifact("PUT", f"{prefix}/b.bin", b"b" * 4000)[0] == 200

        assert ProjectUsage.objects.get().artifact_bytes == LIMIT
        assert sorted(path.name for path in directory.iterdir()) == ["a.bin", "b.bin"]

    def test_it_refuses_the_upload_that_would_pass_it_and_writes_nothing(self, run):
        tracking, prefix, directory, path = run
        tracking.artifact("PUT", f"{prefix}/a.bin", b"a" * 6000)

        status, body = tracking.artifact("PUT", f"{prefix}/b.bin", b"b" * 4001)

        assert status == 413
        assert body.decode().startswith('{"error_code": "REQUEST_LIMIT_EXCEEDED", "message": '
                                        f'"Artifact quota exceeded: {path} holds 6.0 kB (6000 '
                                        "bytes) of artifacts, and this upload of 4.0 kB would "
                                        "pass its limit of 10.0 kB (10000 bytes, "
                                        'PROJECT_ARTIFACT_QUOTA_BYTES).')  # fmt: skip
        assert [path.name for path in directory.iterdir()] == ["a.bin"]
        assert ProjectUsage.objects.get().artifact_bytes == 6000

    def test_it_always_reads_and_deletes_and_a_delete_frees_quota(self, run, settings):
        tracking, prefix, directory, _ = run
        tracking.artifact("PUT", f"{prefix}/a.bin", b"a" * 9000)
        settings.PROJECT_ARTIFACT_QUOTA_BYTES = 1000  # lowered below the usage

        read = tracking.artifact("GET", f"{prefix}/a.bin")
        listed = tracking.get("artifacts/list", run_id=prefix.split("/")[1])
        deleted = tracking.artifact("DELETE", f"{prefix}/a.bin")
        after = tracking.artifact("PUT", f"{prefix}/c.bin", b"c" * 1000)

        assert (read[0], len(read[1])) == (200, 9000)
        assert listed[0] == 200
        assert deleted[0] == 200
        assert after[0] == 200
        assert ProjectUsage.objects.get().artifact_bytes == 1000

    def test_it_asks_for_a_length_instead_of_guessing(self, run):
        tracking, prefix, directory, path = run

        chunked = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}

        status, body = tracking.artifact("PUT", f"{prefix}/a.bin", b"a" * 10, **chunked)

        assert status == 400
        assert f"{path} has an artifact quota: send uploads with a Content-Length" in body.decode()
        assert not directory.exists()

    def test_it_checks_nothing_without_a_quota(self, run, settings):
        tracking, prefix, _, _ = run
        settings.PROJECT_ARTIFACT_QUOTA_BYTES = 0

        assert tracking.artifact("PUT", f"{prefix}/a.bin", b"a" * (LIMIT + 1))[0] == 200
        assert not ProjectUsage.objects.exists()


PROMPTLAB_RUN = {
    "prompt_template": "Say hi to {{ name }}", "prompt_parameters": [{"key": "name", "value": "x"}],
    "model_route": "chat", "model_input": "Say hi to x", "model_output": "hi x",
    "mlflow_version": "3.17.2", "user_id": "root",
}  # fmt: skip


def promptlab_run(tracking: Tracking, experiment_id: str) -> tuple[int, dict]:
    """MLflow serves create-promptlab-run under ajax-api/ only (the UI's route)."""
    response = tracking.client.post(
        tracking.prefix + "ajax-api/2.0/mlflow/runs/create-promptlab-run",
        json.dumps({"experiment_id": experiment_id, **PROMPTLAB_RUN}),
        content_type="application/json", **tracking.auth,
    )  # fmt: skip
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, json.loads(content)


class TestPromptlabRuns:
    """create-promptlab-run writes its artifacts on the server (the model, the results table)."""

    def test_it_makes_a_prompt_lab_run_authored_by_the_caller_and_counts_its_artifacts(
        self, run, settings
    ):
        tracking, prefix, _, _ = run
        settings.PROJECT_ARTIFACT_QUOTA_BYTES = 10_000_000
        experiment_id = prefix.split("/")[0]
        tracking.artifact("PUT", f"{prefix}/a.bin", b"a" * 100)

        status, created = promptlab_run(tracking, experiment_id)

        assert status == 200, created
        info, tags = created["run"]["info"], created["run"]["data"]["tags"]
        assert info["user_id"] == tracking.username
        assert {"key": "mlflow.user", "value": tracking.username} in tags
        assert ProjectUsage.objects.get().artifact_bytes > 100  # the run's files are counted

    def test_it_refuses_a_prompt_lab_run_beyond_the_quota(self, run):
        tracking, prefix, _, _ = run
        tracking.artifact("PUT", f"{prefix}/a.bin", b"a" * LIMIT)

        status, error = promptlab_run(tracking, prefix.split("/")[0])

        assert status == 413, error
        assert error["error_code"] == "REQUEST_LIMIT_EXCEEDED"
