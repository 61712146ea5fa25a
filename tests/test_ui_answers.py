"""The UI's own reads of features this server does not offer are answered as a bare `mlflow
server` without them answers (no error, no toast); an explicit use stays refused."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.inprocess import Tracking

pytestmark = pytest.mark.django_db
_projects = itertools.count()
PROXY = "2.0/mlflow/gateway-proxy"


@pytest.fixture(params=[30, 20], ids=["developer", "reporter"])
def tracking(request, client, gitlab, settings) -> Tracking:
    settings.GITLAB_URL = gitlab.url
    user = gitlab.add_user(f"looker-{request.param}")
    project = gitlab.add_project(f"ui/team/quiet-{next(_projects)}")
    project.direct[user.id] = request.param
    return Tracking(client, project.path, user.token)


def ui_call(tracking: Tracking, method: str, route: str, **params) -> tuple[int, dict]:
    """(status, JSON body) of a call the UI makes, under `ajax-api/` (MLflow serves some of
    them there only)."""
    url = tracking.prefix + "ajax-api/" + route
    if method == "GET":
        response = tracking.client.get(url, params, **tracking.auth)
    else:
        body = json.dumps(params)
        response = tracking.client.generic(
            method, url, body, content_type="application/json", **tracking.auth
        )
    return response.status_code, json.loads(response.content)


class TestGatewayProxy:
    @pytest.mark.parametrize("gateway_path", ["api/2.0/endpoints/", "api/2.0/endpoints/x"])
    def test_it_answers_the_runs_pages_endpoint_list_like_a_server_without_a_gateway(
        self, tracking, gateway_path
    ):
        status, body = ui_call(tracking, "GET", PROXY, gateway_path=gateway_path)

        assert (status, body) == (200, {"endpoints": []})

    def test_it_refuses_a_call_through_the_gateway(self, tracking):
        invocation = "api/2.0/endpoints/x/invocations"
        status, body = ui_call(tracking, "POST", PROXY, gateway_path=invocation, json_data={})

        assert status == 403, body
        assert body["message"] == "The AI gateway: not available on this SharingHub MLflow server."
