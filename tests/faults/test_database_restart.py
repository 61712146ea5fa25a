"""PostgreSQL stops under load and comes back: stock clients keep writing, every request during
the outage gets a retryable MLflow-JSON 503 with Retry-After (never a 500, never the driver's
text), the same gunicorn workers serve again without a restart, and every write a client was
told succeeded is there afterwards. The PostgreSQL here is the test's own, on a port of its own:
the machine's shared one is never touched."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow import MlflowClient

from tests.api import Api
from tests.live import free_port, gunicorn_workers, start_live_server, stop, wait_until

# The PostgreSQL here is the test's own, whatever TEST_DATABASE says (pyproject.toml's markers).
pytestmark = pytest.mark.any_database

WRITERS = 3


def postgres_programs() -> Path:
    """Debian's newest PostgreSQL programs, else the directory of the initdb on the PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if versions:
        return versions[-1]
    if found := shutil.which("initdb"):
        return Path(found).parent
    raise RuntimeError("this test needs PostgreSQL's programs (initdb, pg_ctl)")


class OwnPostgres:
    """A PostgreSQL cluster this test creates, starts and stops (trust auth, no fsync)."""

    def __init__(self):
        self.programs = postgres_programs()
        self.port = free_port()
        # Not under pytest's tmp_path: its parents are private to root, and PostgreSQL runs as
        # the postgres user.
        self.directory = Path(tempfile.mkdtemp(prefix="sharinghub-faults-postgres-"))
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._as_postgres("initdb", "-D", str(self.directory / "data"), "-A", "trust",
                          "-U", "postgres")  # fmt: skip

    def _as_postgres(self, program: str, *arguments: str) -> None:
        # PostgreSQL refuses to run as root; this machine's tests run as root.
        command = [str(self.programs / program), *arguments]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off")  # fmt: skip
        self._as_postgres("pg_ctl", "-D", str(self.directory / "data"), "-o", options,
                          "-l", str(self.directory / "log"), "-w", "start")  # fmt: skip

    def stop(self) -> None:
        """Fast shutdown: open transactions are rolled back, connections are cut."""
        self._as_postgres("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        self._as_postgres("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                          name)  # fmt: skip
        return self.url(name)


@pytest.fixture(scope="module")
def own_postgres():
    server = OwnPostgres()
    server.start()
    yield server
    with contextlib.suppress(subprocess.CalledProcessError):  # a test failed while it was down
        server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="module")
def server_on_postgres(tmp_path_factory, gitlab, own_postgres):
    server, process = start_live_server(
        tmp_path_factory.mktemp("on-postgres"), gitlab.url, workers=2, serve=True,  # migrates
        DATABASE_URL=own_postgres.create_database("django"),
        MLFLOW_BACKEND_STORE_URI=own_postgres.create_database("mlflow"),
    )  # fmt: skip
    yield server, process
    stop(process)


class Writer(threading.Thread):
    """A stock MlflowClient logging one metric step after another, keeping the steps it was
    told were stored."""

    def __init__(self, uri: str, run_id: str, stop: threading.Event):
        super().__init__()
        self.client = MlflowClient(uri)
        self.run_id = run_id
        self.stop = stop
        self.stored: list[int] = []
        self.refused = 0

    def run(self) -> None:
        step = 0
        while not self.stop.is_set():
            try:
                self.client.log_metric(self.run_id, "loss", 1.0 / (step + 1), step=step)
                self.stored.append(step)
            except mlflow.exceptions.MlflowException:
                self.refused += 1  # told it failed: the step may or may not be stored
            step += 1


class RawWriter(threading.Thread):
    """Logs metrics over plain HTTP without retrying, keeping every answer: what a member
    sees while PostgreSQL goes down under it, in flight and after."""

    def __init__(self, api: Api, run_id: str, stop: threading.Event):
        super().__init__()
        self.api = api
        self.run_id = run_id
        self.stop = stop
        self.answers: list[requests.Response] = []

    def run(self) -> None:
        while not self.stop.is_set():
            self.answers.append(self.api.post("runs/log-metric", {
                "run_id": self.run_id, "key": "raw", "value": 1.0, "timestamp": 1,
                "step": len(self.answers)}))  # fmt: skip


def test_it_answers_503_while_postgres_is_down_and_loses_nothing_once_it_is_back(
    server_on_postgres, own_postgres, cast, monkeypatch
):
    server, process = server_on_postgres
    uri = server.tracking_uri(cast.project.path)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", cast.dave.token)
    # The stock client's retries, shortened so that writers see the outage and go on.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    client = MlflowClient(uri)
    experiment = client.create_experiment("through-a-database-restart")
    runs = [client.create_run(experiment).info.run_id for _ in range(WRITERS)]
    workers_before = gunicorn_workers(process.pid)
    api = Api(uri, cast.dave.token)
    stop = threading.Event()
    writers = [Writer(uri, run_id, stop) for run_id in runs]
    raw = RawWriter(Api(uri, cast.dave.token), runs[0], stop)
    for writer in [*writers, raw]:
        writer.start()
    wait_until(lambda: min(len(w.stored) for w in writers) >= 5, "writers to store 5 steps")

    own_postgres.stop()
    during = [api.post("runs/create", {"experiment_id": experiment}) for _ in range(6)]
    during += [api.get("runs/get", run_id=runs[0]) for _ in range(4)]
    readiness = requests.get(f"{server.url}/readyz", timeout=10)
    own_postgres.start()
    stored_before_recovery = [len(writer.stored) for writer in writers]
    wait_until(
        lambda: all(
            len(w.stored) >= n + 5 for w, n in zip(writers, stored_before_recovery, strict=True)
        ),
        "writers to store 5 more steps",
    )
    stop.set()
    for writer in [*writers, raw]:
        writer.join(timeout=60)
    after = [api.post("runs/create", {"experiment_id": experiment}) for _ in range(4)]
    ready_again = requests.get(f"{server.url}/readyz", timeout=10)

    refused = [answer for answer in raw.answers if answer.status_code != 200]
    assert refused  # some of its requests met the outage, in flight or new
    assert {answer.status_code for answer in during} == {503}, [a.text for a in during]
    for answer in during + refused:
        assert answer.status_code == 503, answer.text
        assert answer.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert int(answer.headers["Retry-After"]) > 0
        assert "psycopg" not in answer.text and "SQL" not in answer.text
    assert readiness.status_code == 503
    assert [answer.status_code for answer in after] == [200] * 4
    assert ready_again.status_code == 200
    assert gunicorn_workers(process.pid) == workers_before  # no worker was restarted
    for writer in writers:
        history = {metric.step for metric in client.get_metric_history(writer.run_id, "loss")}
        assert set(writer.stored) <= history
