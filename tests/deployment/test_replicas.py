"""Two replicas behind a load balancer: one database, one artifact store, one Redis.

Frank is a new user and no member of the new project; Dave is its Developer. Whichever replica
a request reaches, it sees what the other stored, and GitLab is asked once.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from tests import testenv
from tests.api import Api
from tests.live import LiveServer, fresh_databases, start_live_server, stop

# Two servers' connections to one PostgreSQL (pyproject.toml's markers).
pytestmark = pytest.mark.many_connections

REDIS = testenv.redis_url("replicas")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, gitlab) -> tuple[LiveServer, LiveServer]:
    shared = tmp_path_factory.mktemp("replicas-shared")
    env = {
        "DATABASE_URL": f"sqlite:///{shared / 'django.sqlite3'}",
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{shared / 'mlflow.sqlite3'}",
        **fresh_databases(shared),  # migrated: SQLite files copied into `shared`
        "MLFLOW_ARTIFACTS_DESTINATION": str(shared / "artifacts"),
        "CACHE_URL": REDIS,
        "METRICS_TOKEN": "scrape-me",
    }
    started = [start_live_server(tmp_path_factory.mktemp(f"replica-{i}"), gitlab.url, workers=2,
                                 **env)
               for i in range(2)]  # fmt: skip
    yield tuple(server for server, _ in started)
    for _, process in started:
        stop(process)


@pytest.fixture
def project(gitlab, cast):
    project = gitlab.add_project(f"replicas/{uuid.uuid4().hex[:8]}/churn")
    project.direct[cast.dave.id] = 30
    return project


def project_calls(gitlab, project) -> int:
    return gitlab.count("/api/v4/projects/" + project.path.replace("/", "%2F"))


class TestTwoReplicas:
    def test_it_shares_a_refusal_through_redis(self, replicas, gitlab, project):
        frank = gitlab.add_user(f"frank-{uuid.uuid4().hex[:6]}")
        a, b = (Api(server.tracking_uri(project.path), frank.token) for server in replicas)

        assert a.get("experiments/search", max_results=5).status_code == 404
        assert b.get("experiments/search", max_results=5).status_code == 404

        assert project_calls(gitlab, project) == 1

    def test_it_serves_on_one_replica_what_the_other_stored(
        self, replicas, gitlab, cast, project, monkeypatch, tmp_path
    ):
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", cast.dave.token)
        a, b = (MlflowClient(server.tracking_uri(project.path)) for server in replicas)

        run_id = a.create_run(a.create_experiment("replicated")).info.run_id
        a.log_metric(run_id, "loss", 0.25)
        a.log_text(run_id, "from replica a", "notes.txt")

        assert b.get_run(run_id).data.metrics == {"loss": 0.25}
        downloaded = b.download_artifacts(run_id, "notes.txt", str(tmp_path))
        assert Path(downloaded).read_text() == "from replica a"
        assert project_calls(gitlab, project) == 1

    def test_it_sums_every_workers_metrics(self, replicas, cast, project):
        server = replicas[0]
        api = Api(server.tracking_uri(project.path), cast.dave.token)
        scrape = {"Authorization": "Bearer scrape-me"}

        def searches() -> float:
            text = requests.get(f"{server.url}/metrics", headers=scrape, timeout=30).text
            found = re.search(
                r'sharinghub_requests_total\{action="read",status="200"\} (\S+)', text
            )
            return float(found[1]) if found else 0.0

        before = searches()
        for _ in range(12):
            assert api.get("experiments/search", max_results=5).status_code == 200

        assert searches() == before + 12
