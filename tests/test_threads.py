"""Many clients at once through one gunicorn worker and its threads (issue 12): each request
binds its own project's workspace (a ContextVar per thread) and its own Django connection, so
concurrent writes to two projects never mix, and none is lost, on SQLite as on PostgreSQL; and
a request in flight when the server is told to stop still finishes."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.api import Api
from tests.live import start_live_server, stop

CLIENTS = 32
METRICS_PER_CLIENT = 10


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory, gitlab):
    """`serve` with one worker and its default threads, for both tests of this file: the last
    one stops it. Its graceful shutdown (under test there) outlasts the upload in flight."""
    server, process = start_live_server(tmp_path_factory.mktemp("one-worker"), gitlab.url,
                                        workers=1, serve=True, GRACEFUL_TIMEOUT="30")  # fmt: skip
    yield server
    stop(process, grace=30)


def log_concurrently(clients: list[MlflowClient], experiments: list[str]) -> list[str]:
    """Each client creates a run in its experiment and logs into it, all starting together;
    the run ids, by client."""
    barrier = threading.Barrier(len(clients))
    run_ids: list[str] = [""] * len(clients)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        client = clients[index]
        try:
            barrier.wait()
            run_id = client.create_run(experiments[index]).info.run_id
            run_ids[index] = run_id
            client.log_param(run_id, "client", str(index))
            for step in range(METRICS_PER_CLIENT):
                client.log_metric(run_id, "loss", index + step / 100, step=step)
        except BaseException as exc:  # noqa: BLE001 - asserted below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return run_ids


def test_it_serves_32_concurrent_clients_of_two_projects_from_one_worker(
    one_worker, gitlab, monkeypatch
):
    workers = re.search(r"^\s*workers\s+(.+)$", one_worker.log.read_text(), re.MULTILINE)
    assert workers.group(1).startswith("1 (gthread,")
    trainer = gitlab.add_user("crowd-trainer")
    projects = [gitlab.add_project(f"crowd/team/p{i}") for i in range(2)]
    for project in projects:
        project.direct[trainer.id] = 30
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", trainer.token)
    by_project = [MlflowClient(tracking_uri=one_worker.tracking_uri(p.path)) for p in projects]
    experiments = [client.create_experiment("crowd") for client in by_project]
    clients = [MlflowClient(tracking_uri=one_worker.tracking_uri(projects[i % 2].path))
               for i in range(CLIENTS)]  # fmt: skip

    run_ids = log_concurrently(clients, [experiments[i % 2] for i in range(CLIENTS)])

    for p, client in enumerate(by_project):
        runs = client.search_runs([experiments[p]], max_results=100)
        logged = {int(run.data.params["client"]): run.info.run_id for run in runs}
        assert logged == {i: run_ids[i] for i in range(p, CLIENTS, 2)}
        for index, run_id in logged.items():
            history = client.get_metric_history(run_id, "loss")
            assert sorted(m.step for m in history) == list(range(METRICS_PER_CLIENT))
            assert {int(m.value) for m in history} == {index}
        other = by_project[1 - p]
        with pytest.raises(MlflowException):
            other.get_run(run_ids[p])


CHUNK = b"x" * 65536


def test_it_finishes_an_upload_in_flight_when_told_to_stop(one_worker, gitlab):
    # Last in this file: it stops the server the first test used.
    server, process = one_worker, one_worker.process
    uploader = gitlab.add_user("late-uploader")
    project = gitlab.add_project("crowd/team/stopping")
    project.direct[uploader.id] = 30
    api = Api(server.tracking_uri(project.path), uploader.token)
    experiment_id = api.ok("POST", "api/2.0/mlflow/experiments/create", json={"name": "s"})
    run = api.ok("POST", "api/2.0/mlflow/runs/create", json=experiment_id)["run"]["info"]
    path = f"{experiment_id['experiment_id']}/{run['run_id']}/artifacts/late.bin"
    sending = threading.Event()

    def body() -> Iterator[bytes]:
        yield CHUNK
        sending.set()
        time.sleep(3)  # SIGTERM arrives meanwhile
        yield from [CHUNK] * 15

    answers: list[requests.Response] = []
    upload = threading.Thread(target=lambda: answers.append(
        api.call("PUT", f"api/2.0/mlflow-artifacts/artifacts/{path}", data=body())))  # fmt: skip
    upload.start()
    assert sending.wait(30)
    time.sleep(1)  # the worker has the request
    process.send_signal(signal.SIGTERM)
    upload.join(60)

    assert answers[0].status_code == 200, answers[0].text[:500]
    assert process.wait(timeout=60) == 0
    stored = list(server.data_dir.rglob("late.bin"))
    assert [file.stat().st_size for file in stored] == [16 * len(CHUNK)]
