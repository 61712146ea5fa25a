"""Two gunicorn workers, each with its memo of cached members (projects/memo.py): a webhook
removing a member reaches both at once, through Redis (CACHE_URL) or without it (the stamp file
in DATA_DIR).

Dave is a Developer of the project until GitLab's webhook says he was removed. Each call goes
on a fresh connection, and the worker that answered it is the one holding its socket (psutil):
calls are made until both workers have answered, so no test depends on how the kernel spreads
connections, nor on any delay.
"""

from __future__ import annotations

import http.client
import json
import uuid
from urllib.parse import urlsplit

import psutil
import pytest

from tests import testenv
from tests.gitlab_double import GitLabDouble, Project, User
from tests.live import LiveServer, gunicorn_workers, start_live_server, stop

# Redis and the stamp file, not the database, carry the news (pyproject.toml's markers).
pytestmark = pytest.mark.any_database

SECRET = "memo-workers-secret-0123456789"
# A Redis database of its own (replicas /0, serving /1, throttling /3, test_memo /7): `make
# test` runs files side by side, and cached answers are keyed by ids their GitLab doubles repeat.
REDIS = testenv.redis_url("memo_workers")
# Enough fresh connections for two workers to each get some, many times over.
MOST_CALLS = 200


@pytest.fixture(scope="module", params=["without CACHE_URL", "with CACHE_URL"])
def server(request, tmp_path_factory, gitlab) -> tuple[LiveServer, set[int]]:
    env = {"GITLAB_WEBHOOK_SECRET": SECRET,
           # Entries outlive the test: only an invalidation can void them.
           "MEMBERSHIP_MEMO_TTL": "3600", "MEMBERSHIP_CACHE_TTL": "3600",
           # A worker keeps each connection until the client closes it: `holder` finds it.
           "KEEPALIVE": "600"}  # fmt: skip
    if request.param == "with CACHE_URL":
        env["CACHE_URL"] = REDIS
    server, process = start_live_server(
        tmp_path_factory.mktemp("memo"), gitlab.url, workers=2, serve=True, **env
    )
    yield server, gunicorn_workers(process.pid)
    stop(process)


@pytest.fixture
def project(gitlab: GitLabDouble) -> Project:
    return gitlab.add_project(f"memo-workers/{uuid.uuid4().hex[:8]}/churn")


@pytest.fixture
def dave(gitlab: GitLabDouble, project: Project) -> User:
    dave = gitlab.add_user(f"dave-{uuid.uuid4().hex[:6]}")
    project.direct[dave.id] = 30
    return dave


def search(server: LiveServer, workers: set[int], project: Project, user: User) -> tuple[int, int]:
    """(status, pid of the worker that answered) of one search on a fresh connection."""
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    try:
        connection.request(
            "POST",
            f"/mlflow/{project.path}/tracking/api/2.0/mlflow/experiments/search",
            body=json.dumps({"max_results": 1}),
            headers={"Authorization": f"Bearer {user.token}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
        # The kept-alive socket is still the answering worker's.
        port = connection.sock.getsockname()[1]
        return response.status, holder(workers, port)
    finally:
        connection.close()


def holder(workers: set[int], port: int) -> int:
    for pid in workers:
        held = psutil.Process(pid).net_connections(kind="tcp")
        if any(socket.raddr and socket.raddr.port == port for socket in held):
            return pid
    raise AssertionError(f"no worker of {workers} holds the connection from port {port}")


def until_each_worker_answered(times: int, call) -> dict[int, list[int]]:
    """Statuses by worker, calling until every worker has answered `times` times."""
    statuses: dict[int, list[int]] = {}
    for _ in range(MOST_CALLS):
        status, pid = call()
        statuses.setdefault(pid, []).append(status)
        if len(statuses) == 2 and min(len(seen) for seen in statuses.values()) >= times:
            return statuses
    raise AssertionError(f"{MOST_CALLS} calls did not reach both workers: {statuses}")


def post_hook(server: LiveServer, event: dict) -> int:
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    try:
        connection.request("POST", "/hooks/gitlab/", body=json.dumps(event), headers={
            "X-Gitlab-Token": SECRET, "Content-Type": "application/json"})  # fmt: skip
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_it_refuses_a_removed_member_on_the_next_call_of_every_worker(server, project, dave):
    live, workers = server

    def call() -> tuple[int, int]:
        return search(live, workers, project, dave)

    # Each worker answers twice: its second answer at the latest comes from its memo.
    before = until_each_worker_answered(2, call)
    del project.direct[dave.id]
    removed = {"event_name": "user_remove_from_team", "project_id": project.id,
               "project_path_with_namespace": project.path, "user_id": dave.id,
               "user_username": dave.username, "access_level": "Developer"}  # fmt: skip
    assert post_hook(live, removed) == 200
    after = until_each_worker_answered(1, call)

    assert {status for seen in before.values() for status in seen} == {200}
    assert {pid: set(seen) for pid, seen in after.items()} == {pid: {404} for pid in workers}
