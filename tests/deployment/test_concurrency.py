"""Many clients at once on PostgreSQL: gunicorn with 4 workers, 16 stock clients in one project.

Two of the clients race `set_experiment` on the same new name, and every worker sees its first
request to a new project at the same moment: workspaces, default experiments and experiments
must each be created exactly once, and no client may see an error.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from sqlalchemy import create_engine, text

from tests import testenv
from tests.api import Api
from tests.live import LiveServer, migrated_template, start_live_server, stop

pytestmark = [
    # 4 gunicorn workers and 16 clients: PostgreSQL connections by the dozen (pyproject.toml).
    pytest.mark.many_connections,
    pytest.mark.skipif(
        testenv.TEST_DATABASE != "postgresql",
        reason="SQLite serialises writers; the concurrency promise is made on PostgreSQL "
        "(TEST_DATABASE=postgresql)",
    ),
]

CLIENTS = 16
METRICS = 200
BATCH = 10  # metrics per request: 20 requests per client


@pytest.fixture(scope="module")
def databases() -> dict[str, str]:
    """Migrated databases of the server's own, which the tests read directly."""
    return testenv.database_env("concurrency", templates=migrated_template()["databases"])


@pytest.fixture(scope="module")
def server(tmp_path_factory, gitlab, databases) -> LiveServer:
    server, process = start_live_server(
        tmp_path_factory.mktemp("concurrency"), gitlab.url, workers=4, **databases
    )
    yield server
    stop(process)


def mlflow_rows(databases: dict[str, str], query: str, **params) -> list[tuple]:
    engine = create_engine(databases["MLFLOW_BACKEND_STORE_URI"])
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(query), params))
    finally:
        engine.dispose()


@pytest.fixture
def new_project(gitlab, cast):
    """A project no worker has served yet, where Dave is a Developer."""
    project = gitlab.add_project(f"load/p{len(gitlab.projects)}/churn")
    project.direct[cast.dave.id] = 30
    return project


@pytest.fixture
def dave(cast, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", cast.dave.token)
    # mlflow.set_experiment exports MLFLOW_EXPERIMENT_ID: undone at teardown, so that later
    # tests' subprocesses (tests/deployment/old_sharinghub.py) do not inherit it.
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "")
    yield
    mlflow.set_tracking_uri(None)


class TestSixteenClients:
    def test_it_loses_nothing_and_duplicates_nothing(
        self, server, databases, new_project, dave, tmp_path
    ):
        uri = server.tracking_uri(new_project.path)
        mlflow.set_tracking_uri(uri)
        shared = MlflowClient(uri).create_experiment("shared")
        racers = threading.Barrier(2)

        def work(i: int) -> tuple[str, str]:
            client = MlflowClient(uri)
            experiment_id = shared
            if i < 2:
                racers.wait()
                experiment_id = mlflow.set_experiment("raced").experiment_id
            run_id = client.create_run(experiment_id).info.run_id
            for first in range(0, METRICS, BATCH):
                batch = [Metric("loss", 1.0 / (step + 1), 0, step)
                         for step in range(first, first + BATCH)]  # fmt: skip
                client.log_batch(run_id, metrics=batch)
            client.log_text(run_id, f"client {i}", "hello.txt")
            client.set_terminated(run_id)
            return experiment_id, run_id

        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(work, range(CLIENTS)))

        client = MlflowClient(uri)
        assert results[0][0] == results[1][0]
        for i, (_, run_id) in enumerate(results):
            history = client.get_metric_history(run_id, "loss")
            assert sorted(m.step for m in history) == list(range(METRICS))
            downloaded = client.download_artifacts(run_id, "hello.txt", str(tmp_path / str(i)))
            assert Path(downloaded).read_text() == f"client {i}"
        workspace = f"p-{new_project.id}"
        names = mlflow_rows(databases, "SELECT name FROM experiments WHERE workspace = :w",
                            w=workspace)  # fmt: skip
        assert sorted(name for (name,) in names) == ["Default", "raced", "shared"]
        assert mlflow_rows(databases, "SELECT count(*) FROM workspaces WHERE name = :w",
                           w=workspace) == [(1,)]  # fmt: skip
        assert "Traceback" not in server.log.read_text()


class TestFirstRequestToANewProject:
    def test_it_creates_the_workspace_and_default_experiment_once(
        self, server, databases, new_project, cast
    ):
        api = Api(server.tracking_uri(new_project.path), cast.dave.token)
        start = threading.Barrier(8)

        def first_run(_: int) -> int:
            start.wait()
            return api.post("runs/create", {"experiment_id": "0"}).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(first_run, range(8)))

        assert statuses == [200] * 8
        workspace = f"p-{new_project.id}"
        assert mlflow_rows(databases, "SELECT name FROM experiments WHERE workspace = :w",
                           w=workspace) == [("Default",)]  # fmt: skip
        assert mlflow_rows(databases, "SELECT count(*) FROM workspaces WHERE name = :w",
                           w=workspace) == [(1,)]  # fmt: skip
        runs = api.post("runs/search", {"experiment_ids": ["0"]}).json()["runs"]
        assert len(runs) == 8
