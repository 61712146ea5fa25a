"""MLflow reads a GET request's body when it has no query string: such bodies are read,
limited and checked like a POST's."""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.api import Api
from tests.live import start_live_server, stop

LIMIT = 1024 * 1024
HUGE = 200 * 1024 * 1024


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory, gitlab):
    """One gunicorn worker, so that its memory is the memory of every request."""
    server, process = start_live_server(
        tmp_path_factory.mktemp("get-bodies"), gitlab.url, workers=1,
        MAX_JSON_BODY_SIZE=str(LIMIT),
    )  # fmt: skip
    yield server, process.pid
    stop(process)


def workers_rss(master_pid: int) -> int:
    """Resident memory (bytes) of gunicorn's workers, the master's children."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    total = 0
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def chunks(size: int, piece: bytes = b" " * 65536):
    for _ in range(size // len(piece)):
        yield piece


def get_with_body(uri: str, token: str, data, **headers) -> requests.Response:
    return requests.request(
        "GET", uri + "api/2.0/mlflow/runs/get", data=data, timeout=120,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                 **headers},
    )  # fmt: skip


def declare_a_huge_body(uri: str, token: str) -> http.client.HTTPResponse:
    """A GET announcing HUGE bytes of body and sending none: answered before it is read."""
    url = urlsplit(uri + "api/2.0/mlflow/runs/get")
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.putrequest("GET", url.path)
    connection.putheader("Authorization", f"Bearer {token}")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(HUGE))
    connection.endheaders()
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_it_refuses_a_huge_get_body_without_growing(one_worker, cast):
    server, master_pid = one_worker
    uri = server.tracking_uri(cast.project.path)
    Api(uri, cast.dave.token).ok(
        "POST", "api/2.0/mlflow/experiments/search", json={"max_results": 1}
    )
    before = workers_rss(master_pid)

    streamed = get_with_body(uri, cast.dave.token, chunks(HUGE))  # chunked: no length given
    declared = declare_a_huge_body(uri, cast.dave.token)

    assert streamed.status_code == 413, streamed.text[:300]
    assert streamed.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert declared.status == 413
    assert workers_rss(master_pid) - before < 32 * 1024 * 1024


def test_it_answers_404_for_another_projects_run_named_in_a_get_body(
    gunicorn_server, cast, project_a, project_b
):
    _, seeded_b = project_b
    uri = gunicorn_server.tracking_uri(cast.project.path)
    body = f'{{"run_id": "{seeded_b["run_id"]}"}}'.encode()

    in_get = get_with_body(uri, cast.olivia.token, body)
    in_post = requests.post(uri + "api/2.0/mlflow/runs/search", timeout=30, headers={
        "Authorization": f"Bearer {cast.olivia.token}"},
        json={"experiment_ids": [seeded_b["experiment_id"]]})  # fmt: skip

    assert in_get.status_code == 404
    # The bridge's own check refused it, before MLflow's workspace scoping was asked.
    assert in_get.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": f"No run with id {seeded_b['run_id']!r} in this project.",
    }
    assert in_post.status_code == 404


def test_it_still_serves_a_get_body_naming_the_projects_own_run(gunicorn_server, cast, project_a):
    _, seeded_a = project_a
    uri = gunicorn_server.tracking_uri(cast.project.path)

    answer = get_with_body(uri, cast.olivia.token, f'{{"run_id": "{seeded_a["run_id"]}"}}')

    assert answer.status_code == 200
    assert answer.json()["run"]["info"]["run_id"] == seeded_a["run_id"]
