"""Redis (CACHE_URL) fails: members keep working from the database, readiness reports the cache
as degraded without failing, /metrics counts the errors, and Redis is used again once it is
back, without a restart. The Redis here is the test's own, on a port of its own."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
import requests

from tests.api import Api
from tests.live import free_port, start_live_server, stop

# Redis fails here; the database it falls back on is the subject of the in-process cache
# tests on both databases (pyproject.toml's markers).
pytestmark = pytest.mark.any_database

METRICS_TOKEN = "metrics-secret"


class OwnRedis:
    """A redis-server process this test starts and stops, keeping nothing on disk."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        stop(self.process)

    def stored_keys(self) -> list[bytes]:
        return redis.Redis.from_url(self.url).keys("*")


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    server = OwnRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture(scope="module")
def server_on_redis(tmp_path_factory, gitlab, own_redis):
    server, process = start_live_server(
        tmp_path_factory.mktemp("on-redis"), gitlab.url, CACHE_URL=own_redis.url,
        METRICS_TOKEN=METRICS_TOKEN,
    )  # fmt: skip
    yield server
    stop(process)


def cache_errors(server) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10,
                        headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text  # fmt: skip
    lines = [line for line in text.splitlines() if line.startswith("sharinghub_cache_errors_total")]
    return sum(float(line.split()[-1]) for line in lines)


def test_it_keeps_members_working_while_redis_is_down_and_uses_it_again(
    server_on_redis, own_redis, cast
):
    api = Api(server_on_redis.tracking_uri(cast.project.path), cast.dave.token)
    experiment = api.ok("POST", "api/2.0/mlflow/experiments/create",
                        json={"name": "through-a-redis-outage"})["experiment_id"]  # fmt: skip
    assert requests.get(f"{server_on_redis.url}/readyz", timeout=10).json()["cache"] == "ok"

    own_redis.stop()
    during = [api.call("POST", "api/2.0/mlflow/runs/create", json={"experiment_id": experiment})
              for _ in range(5)]  # fmt: skip
    readiness = requests.get(f"{server_on_redis.url}/readyz", timeout=10)
    refused = Api(server_on_redis.tracking_uri(cast.project.path), "glpat-unknown").post(
        "experiments/search", {"max_results": 1}
    )

    assert [answer.status_code for answer in during] == [200] * 5
    assert refused.status_code == 401  # throttles allow while they cannot count
    assert readiness.status_code == 200
    assert readiness.json()["cache"].startswith("degraded: ")
    assert cache_errors(server_on_redis) >= 1

    own_redis.start()  # empty: it kept nothing
    time.sleep(6)  # the pause after a failure (cache.PAUSE_SECONDS) is over
    # A failed authentication's throttle count lands in the new Redis. A worker's first call
    # may still meet a connection its pool kept from the old Redis (a failure, so one more
    # pause): a bounded number of tries, no timing asserted.
    counted = False
    for _ in range(30):
        Api(server_on_redis.tracking_uri(cast.project.path), "glpat-again").post(
            "experiments/search", {"max_results": 1}
        )
        counted = any(b"throttle_failed_authentications" in k for k in own_redis.stored_keys())
        if counted:
            break
        time.sleep(1)
    runs = api.ok("POST", "api/2.0/mlflow/runs/search", json={"experiment_ids": [experiment]})

    assert len(runs["runs"]) == 5
    assert counted
    assert requests.get(f"{server_on_redis.url}/readyz", timeout=10).json()["cache"] == "ok"
