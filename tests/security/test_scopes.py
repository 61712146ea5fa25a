"""Every credential proves its own right to use GitLab's API: a member's cached membership is
never lent to another token of theirs that lacks the read_api scope."""

from __future__ import annotations

import pytest

from mlflow_bridge.edge.routes import ROUTES
from tests.api import Api
from tests.security.test_every_route import attack


@pytest.fixture
def dave_api(site, cast) -> Api:
    """Dave's read_api token, used first: his membership is now in the cache."""
    api = Api(site.tracking_uri(cast.project.path), cast.dave.token)
    api.ok("POST", "api/2.0/mlflow/experiments/search", json={"max_results": 1})
    return api


def refused_everywhere(api: Api, target) -> list[tuple[str, str, str, int]]:
    """The routes (both prefixes) where `api`'s token was not refused with 401."""
    answered = []
    for prefix in ("api", "ajax-api"):
        for route in ROUTES:
            response = attack(api, route, prefix, target)
            if response.status_code != 401:
                answered.append((prefix, route.method, route.rule, response.status_code))
    return answered


def test_it_refuses_a_read_user_token_of_a_member_on_every_route(
    site, gitlab, cast, dave_api, target
):
    read_user_token = gitlab.add_token(cast.dave, scopes=("read_user",))
    api = Api(dave_api.uri, read_user_token)

    assert refused_everywhere(api, target) == []
    answer = api.post("experiments/search", {"max_results": 1})
    assert answer.json()["error_code"] == "UNAUTHENTICATED"
    assert "read_api" in answer.json()["message"]


def test_it_refuses_an_oauth_token_without_read_api_on_every_route(
    site, gitlab, cast, dave_api, target
):
    oauth_token = gitlab.oauth.issue(cast.dave, scopes=("read_user", "openid"))
    api = Api(dave_api.uri, oauth_token)

    assert refused_everywhere(api, target) == []


def test_it_still_serves_the_read_api_token_of_the_same_member(gitlab, cast, dave_api):
    gitlab.add_token(cast.dave, scopes=("read_user",))

    assert dave_api.post("experiments/search", {"max_results": 1}).status_code == 200


def test_it_serves_a_second_read_api_token_of_a_member(site, gitlab, cast, dave_api):
    api = Api(dave_api.uri, gitlab.add_token(cast.dave, scopes=("read_api",)))

    assert api.post("experiments/search", {"max_results": 1}).status_code == 200
