"""GitLab answers, but only after longer than GITLAB_TIMEOUT: each call is cut at the timeout,
members whose membership GitLab confirmed within GITLAB_OUTAGE_GRACE keep working, and after
GITLAB_BREAKER_FAILURES timeouts in a row a worker stops asking GitLab for GITLAB_COOL_OFF
seconds, so its requests no longer wait on it. Once GitLab is fast again, it is asked again.
The GitLab double here is the test's own, on a port of its own."""

from __future__ import annotations

import time

import pytest
import requests

from tests.api import Api
from tests.cast import make_cast
from tests.gitlab_double import GitLabDouble
from tests.live import start_live_server, stop

# GitLab, not the database, is slow here (pyproject.toml's markers).
pytestmark = pytest.mark.any_database

FAILURES = 2
COOL_OFF = 3


@pytest.fixture(scope="module")
def slow_gitlab():
    double = GitLabDouble().start()
    yield double
    double.stop()


@pytest.fixture(scope="module")
def server_on_slow_gitlab(tmp_path_factory, slow_gitlab):
    # One worker: the breaker is per process, and this test counts one process's calls.
    server, process = start_live_server(
        tmp_path_factory.mktemp("slow-gitlab"), slow_gitlab.url, workers=1,
        GITLAB_TIMEOUT="1", GITLAB_BREAKER_FAILURES=str(FAILURES), GITLAB_COOL_OFF=str(COOL_OFF),
        MEMBERSHIP_CACHE_TTL="1", MEMBERSHIP_NEGATIVE_CACHE_TTL="1",
    )  # fmt: skip
    yield server
    stop(process)


def test_it_serves_known_members_through_a_slow_gitlab_without_waiting_on_it(
    server_on_slow_gitlab, slow_gitlab
):
    cast = make_cast(slow_gitlab, "slow/team/churn", "slow/other/churn")
    uri = server_on_slow_gitlab.tracking_uri(cast.project.path)
    dave, rita = Api(uri, cast.dave.token), Api(uri, cast.rita.token)
    experiment = dave.ok("POST", "api/2.0/mlflow/experiments/create",
                         json={"name": "through-a-slow-gitlab"})["experiment_id"]  # fmt: skip
    time.sleep(1.5)  # Dave's membership is now older than MEMBERSHIP_CACHE_TTL: GitLab is asked

    slow_gitlab.delay = 3.0  # longer than GITLAB_TIMEOUT
    calls_before = slow_gitlab.count()
    during = [dave.post("runs/create", {"experiment_id": experiment}) for _ in range(6)]
    calls_during = slow_gitlab.count() - calls_before
    refused = rita.post("experiments/search", {"max_results": 1})
    calls_for_rita = slow_gitlab.count() - calls_before - calls_during
    readiness = requests.get(f"{server_on_slow_gitlab.url}/readyz", timeout=10).json()

    assert [answer.status_code for answer in during] == [200] * 6
    assert calls_during == FAILURES  # then the breaker opened: four requests asked nothing
    assert refused.status_code == 503
    assert refused.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert calls_for_rita == 0
    assert readiness["gitlab"].startswith("not asked")

    slow_gitlab.delay = 0.0
    time.sleep(COOL_OFF + 0.5)  # the cool-off is over
    calls_before = slow_gitlab.count()
    after = [dave.post("runs/create", {"experiment_id": experiment}) for _ in range(2)]
    rita_after = rita.post("experiments/search", {"max_results": 1})

    assert [answer.status_code for answer in after] == [200] * 2
    assert rita_after.status_code == 200
    assert slow_gitlab.count() > calls_before  # asked again: the breaker closed
    runs = dave.ok("POST", "api/2.0/mlflow/runs/search", json={"experiment_ids": [experiment]})
    assert len(runs["runs"]) == 6 + 2
