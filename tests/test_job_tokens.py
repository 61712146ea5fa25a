"""GitLab CI job tokens: MLFLOW_TRACKING_TOKEN=$CI_JOB_TOKEN logs to the job's own project only.

Cindy is a Developer of ci<n>/team/churn and of ci<n>/team/other; her pipelines' jobs run in
ci<n>/team/churn. Rory is a Reporter there, and Nadia no member at all (she triggered a
pipeline through a trigger the project shares). The service account is a GitLab administrator.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from mlflow import MlflowClient

from projects.models import CIJob, TokenFingerprint
from tests.api import Api
from tests.gitlab_double import GitLabDouble, Project, User
from tests.inprocess import Tracking
from tests.live import LiveServer

TTL = 2
SEARCH = {"max_results": 10}
_groups = itertools.count()


def unique(name: str) -> str:
    # In-process tests share one MLflow database across runs; project ids repeat.
    return f"{name}-{uuid.uuid4().hex[:8]}"


@dataclass
class Pipeline:
    project: Project
    other: Project
    cindy: User
    rory: User
    nadia: User
    service: User


def make_pipeline(gitlab: GitLabDouble) -> Pipeline:
    top = f"ci{next(_groups)}"
    project, other = (
        gitlab.add_project(f"{top}/team/churn"),
        gitlab.add_project(f"{top}/team/other"),
    )
    cindy, rory, nadia = gitlab.add_user("cindy"), gitlab.add_user("rory"), gitlab.add_user("nadia")
    project.direct[cindy.id] = other.direct[cindy.id] = 30
    project.direct[rory.id] = 20
    service = gitlab.add_user("mlflow-service", admin=True)
    return Pipeline(project, other, cindy, rory, nadia, service)  # fmt: skip


class TestWithTheStockClient:
    """On the shared live server, which has a GITLAB_SERVICE_TOKEN (tests/conftest.py)."""

    @pytest.fixture(scope="class")
    def ci(self, gitlab) -> Pipeline:
        return make_pipeline(gitlab)

    @pytest.fixture(scope="class")
    def server(self, gunicorn_server) -> LiveServer:
        return gunicorn_server

    def test_it_logs_a_run_to_its_own_project(self, gitlab, ci, server, monkeypatch):
        job = gitlab.add_job(ci.project, ci.cindy)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", job.token)
        client = MlflowClient(tracking_uri=server.tracking_uri(ci.project.path))

        run = client.create_run(client.create_experiment("ci"), tags={"team": "churn"})
        client.log_param(run.info.run_id, "alpha", "0.5")
        for step in range(3):
            client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
        client.log_text(run.info.run_id, "trained in CI", "notes.txt")
        client.set_terminated(run.info.run_id)

        logged = client.get_run(run.info.run_id)
        assert logged.data.params == {"alpha": "0.5"}
        assert logged.data.metrics == {"loss": 1.0 / 3}
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["notes.txt"]
        assert {k: v for k, v in logged.data.tags.items() if not k.startswith("mlflow.")} == {
            "team": "churn",
            "gitlab.job_url": f"{gitlab.url}/{ci.project.path}/-/jobs/{job.id}",
            "gitlab.job_id": str(job.id),
            "gitlab.pipeline_id": str(job.pipeline_id),
        }
        # Cindy finds the job's run with her own token.
        seen = Api(server.tracking_uri(ci.project.path), ci.cindy.token).ok(
            "GET", "api/2.0/mlflow/runs/get", params={"run_id": run.info.run_id}
        )
        assert {"key": "gitlab.job_id", "value": str(job.id)} in seen["run"]["data"]["tags"]


class TestThroughTheSite:
    """In-process, with a GITLAB_SERVICE_TOKEN, as the live server runs."""

    @pytest.fixture
    def ci(self, gitlab, site, settings) -> Pipeline:
        pipeline = make_pipeline(gitlab)
        settings.GITLAB_SERVICE_TOKEN = pipeline.service.token
        return pipeline

    def test_it_answers_404_on_another_project_of_the_same_user(self, gitlab, ci, site):
        job = gitlab.add_job(ci.project, ci.cindy)

        on_other = Api(site.tracking_uri(ci.other.path), job.token).post(
            "experiments/search", SEARCH
        )
        on_missing = Api(site.tracking_uri("ci/no/such"), job.token).post(
            "experiments/search", SEARCH
        )

        assert on_other.status_code == 404
        assert on_other.content == on_missing.content
        # Cindy herself may: the job may not.
        cindy = Api(site.tracking_uri(ci.other.path), ci.cindy.token)
        assert cindy.post("experiments/search", SEARCH).status_code == 200

    def test_it_stops_a_finished_jobs_token_within_the_ttl(self, gitlab, ci, site, settings):
        settings.MEMBERSHIP_CACHE_TTL, settings.MEMBERSHIP_NEGATIVE_CACHE_TTL = TTL, 1
        job = gitlab.add_job(ci.project, ci.cindy)
        api = Api(site.tracking_uri(ci.project.path), job.token)
        assert api.post("experiments/search", SEARCH).status_code == 200

        job.status = "success"
        time.sleep(TTL + 0.5)
        response = api.post("experiments/search", SEARCH)

        assert response.status_code == 401
        assert response.json()["error_code"] == "UNAUTHENTICATED"


@pytest.mark.django_db
class TestInProcess:
    @pytest.fixture(autouse=True)
    def job_settings(self, settings, gitlab):
        settings.GITLAB_URL = gitlab.url
        settings.MEMBERSHIP_CACHE_TTL = 60
        settings.GITLAB_SERVICE_TOKEN = ""
        settings.CI_JOB_TOKEN_DEFAULT_ROLE = "reporter"
        cache.clear()

    @pytest.fixture
    def ci(self, gitlab) -> Pipeline:
        return make_pipeline(gitlab)

    def write(self, client, project: Project, token: str) -> tuple[int, dict]:
        name = unique("written")
        return Tracking(client, project.path, token).post("experiments/create", {"name": name})

    def test_it_reads_only_by_default_without_a_service_token(self, client, gitlab, ci):
        job = gitlab.add_job(ci.project, ci.cindy)

        read = Tracking(client, ci.project.path, job.token).post("experiments/search", SEARCH)
        status, body = self.write(client, ci.project, job.token)

        assert read[0] == 200
        assert status == 403
        assert body["message"].endswith("you are Reporter.")

    def test_it_writes_when_the_default_role_is_developer(self, client, gitlab, ci, settings):
        settings.CI_JOB_TOKEN_DEFAULT_ROLE = "developer"
        job = gitlab.add_job(ci.project, ci.cindy)

        assert self.write(client, ci.project, job.token)[0] == 200
        assert self.write(client, ci.other, job.token)[0] == 404

    def test_it_finds_the_project_by_the_job_url_without_a_service_token(self, client, gitlab, ci):
        job = gitlab.add_job(ci.project, ci.cindy)
        before = len(gitlab.calls)

        Tracking(client, ci.project.path, job.token).post("experiments/search", SEARCH)

        assert CIJob.objects.get(id=job.id).project_path == ci.project.path
        assert [path for _, path in gitlab.calls[before:]] == ["/api/v4/job"]

    def test_it_gives_the_triggering_users_role_with_a_service_token(
        self, client, gitlab, ci, settings
    ):
        settings.GITLAB_SERVICE_TOKEN = ci.service.token
        developer = gitlab.add_job(ci.project, ci.cindy)
        reporter = gitlab.add_job(ci.project, ci.rory)
        outsider = gitlab.add_job(ci.project, ci.nadia)

        assert self.write(client, ci.project, developer.token)[0] == 200
        assert self.write(client, ci.project, reporter.token)[0] == 403
        assert self.write(client, ci.project, outsider.token)[0] == 404

    def test_it_recognises_a_job_token_by_gitlabs_answer(self, client, gitlab, ci):
        job = gitlab.add_job(ci.project, ci.cindy, token_prefix="custom-")

        status, _ = Tracking(client, ci.project.path, job.token).post("experiments/search", SEARCH)

        assert status == 200

    def test_it_refuses_a_job_token_gitlab_does_not_know(self, client, ci):
        status, body = Tracking(client, ci.project.path, "glcbt-unknown").post(
            "experiments/search", SEARCH
        )

        assert status == 401

    def test_it_refuses_a_finished_jobs_token_once_its_answer_expired(self, client, gitlab, ci):
        job = gitlab.add_job(ci.project, ci.cindy)
        tracking = Tracking(client, ci.project.path, job.token)
        assert tracking.post("experiments/search", SEARCH)[0] == 200
        job.status = "success"
        TokenFingerprint.objects.filter(job_id=job.id).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )

        status, body = tracking.post("experiments/search", SEARCH)

        assert status == 401

    def test_it_keeps_a_job_working_within_the_outage_grace(self, client, gitlab, ci):
        job = gitlab.add_job(ci.project, ci.cindy)
        tracking = Tracking(client, ci.project.path, job.token)
        assert tracking.post("experiments/search", SEARCH)[0] == 200
        TokenFingerprint.objects.filter(job_id=job.id).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        gitlab.down = True
        try:
            status, _ = tracking.post("experiments/search", SEARCH)
        finally:
            gitlab.down = False

        assert status == 200

    def test_it_tags_runs_with_the_job(self, client, gitlab, ci, settings):
        settings.CI_JOB_TOKEN_DEFAULT_ROLE = "developer"
        job = gitlab.add_job(ci.project, ci.cindy)
        tracking = Tracking(client, ci.project.path, job.token)
        _, experiment = tracking.post("experiments/create", {"name": unique("tagged")})

        _, created = tracking.post("runs/create", {
            "experiment_id": experiment["experiment_id"],
            "tags": [{"key": "mine", "value": "kept"}]})  # fmt: skip

        tags = {tag["key"]: tag["value"] for tag in created["run"]["data"]["tags"]}
        assert tags["gitlab.job_url"] == f"{gitlab.url}/{ci.project.path}/-/jobs/{job.id}"
        assert tags["gitlab.pipeline_id"] == str(job.pipeline_id)
        assert tags["mine"] == "kept"

    def test_it_refuses_job_tags_a_client_sends_itself(self, client, gitlab, ci, settings):
        settings.CI_JOB_TOKEN_DEFAULT_ROLE = "developer"
        job = gitlab.add_job(ci.project, ci.cindy)
        tracking = Tracking(client, ci.project.path, job.token)
        _, experiment = tracking.post("experiments/create", {"name": unique("forged")})

        status, answer = tracking.post("runs/create", {
            "experiment_id": experiment["experiment_id"],
            "tags": [{"key": "gitlab.job_url", "value": "https://forged"}]})  # fmt: skip

        assert status == 400
        assert "set by the server only" in answer["message"]

    def test_it_does_not_tag_runs_of_personal_tokens(self, client, ci):
        tracking = Tracking(client, ci.project.path, ci.cindy.token)
        _, experiment = tracking.post("experiments/create", {"name": unique("untagged")})

        _, created = tracking.post("runs/create", {"experiment_id": experiment["experiment_id"]})

        assert not [t for t in created["run"]["data"]["tags"] if t["key"].startswith("gitlab.")]

    def test_it_stores_a_hash_of_the_job_token_never_the_token(self, client, gitlab, ci):
        job = gitlab.add_job(ci.project, ci.cindy)
        Tracking(client, ci.project.path, job.token).post("experiments/search", SEARCH)

        with connection.cursor() as cursor:
            for table in connection.introspection.table_names(cursor):
                cursor.execute(f'SELECT * FROM "{table}"')
                assert job.token not in repr(cursor.fetchall()), table
        assert TokenFingerprint.objects.filter(
            digest=TokenFingerprint.digest_of(job.token), job_id=job.id
        ).exists()
