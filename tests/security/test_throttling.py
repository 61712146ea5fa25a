"""A flood of unknown credentials costs GitLab a bounded number of calls, and members from
elsewhere do not notice it. This server runs as in production: the throttles' default rates,
and their counters in Redis (CACHE_URL), shared by its workers.

Each test comes from loopback addresses of its own (127.x.y.z), so that counters left in Redis
by another run of the suite never meet this one's."""

from __future__ import annotations

import secrets

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests import testenv
from tests.api import Api
from tests.live import start_live_server, stop

# The throttles count in Redis, not in the database (pyproject.toml's markers).
pytestmark = pytest.mark.any_database

FLOOD = 1000
# The README's bound, with the default rates: FAILED_AUTHENTICATIONS_PER_ADDRESS (10/min)
# lookups get through, and a random token costs GitLab at most 2 calls (/user, then /job).
MAX_GITLAB_CALLS = 2 * 10


def new_address() -> str:
    return "127." + ".".join(str(secrets.randbelow(254) + 1) for _ in range(3))


class FromAddress(HTTPAdapter):
    """Connects from a given loopback address, as another client machine would."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(address: str, token: str | None = None) -> requests.Session:
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


@pytest.fixture(scope="module")
def throttled_server(tmp_path_factory, gitlab):
    # The production rates: the suite's other servers run with throttles wide open (testenv).
    server, process = start_live_server(
        tmp_path_factory.mktemp("throttled"),
        gitlab.url,
        workers=2,
        THROTTLE_GITLAB_LOOKUPS_PER_ADDRESS="60/min",
        THROTTLE_GITLAB_LOOKUPS="600/min",
        THROTTLE_FAILED_AUTHENTICATIONS_PER_ADDRESS="10/min",
        CACHE_URL=testenv.redis_url("throttling"),
    )
    yield server
    stop(process)


def test_it_bounds_gitlab_calls_of_a_flood_and_serves_members_elsewhere(
    throttled_server, gitlab, cast
):
    uri = throttled_server.tracking_uri(cast.project.path)
    search = uri + "api/2.0/mlflow/experiments/search"
    member = session_from(new_address(), cast.dave.token)
    assert member.post(search, json={"max_results": 1}).status_code == 200
    calls_before = gitlab.count()

    statuses: dict[int, int] = {}
    retry_after = set()
    attacker = session_from(new_address())
    for i in range(FLOOD):
        token = secrets.token_hex(16)
        response = attacker.post(search, json={}, headers={"Authorization": f"Bearer {token}"})
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code == 429:
            retry_after.add(response.headers.get("Retry-After"))
            assert response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        if i % 100 == 0:
            # Meanwhile, a member from another address works normally.
            assert member.post(search, json={"max_results": 1}).status_code == 200

    assert gitlab.count() - calls_before <= MAX_GITLAB_CALLS
    assert set(statuses) == {401, 429}
    assert statuses[429] >= FLOOD - 10
    assert None not in retry_after and all(int(value) > 0 for value in retry_after)


def test_it_throttles_repeated_failures_of_one_known_bad_token(throttled_server, gitlab, cast):
    uri = throttled_server.tracking_uri(cast.project.path)
    attacker = session_from(new_address(), "glpat-not-a-token")

    statuses = [attacker.get(uri + "api/2.0/mlflow/experiments/search").status_code
                for _ in range(30)]  # fmt: skip

    assert statuses[:5] == [401] * 5
    assert statuses[-5:] == [429] * 5


def test_it_lets_a_member_write_while_another_address_is_throttled(throttled_server, gitlab, cast):
    attacker = session_from(new_address())
    uri = throttled_server.tracking_uri(cast.project.path)
    for _ in range(30):
        attacker.get(uri + "api/2.0/mlflow/experiments/search",
                     headers={"Authorization": f"Bearer {secrets.token_hex(8)}"})  # fmt: skip

    api = Api(uri, cast.olivia.token)
    run = api.ok("POST", "api/2.0/mlflow/runs/create", json={"experiment_id": "0"})
    assert run["run"]["info"]["status"] == "RUNNING"
