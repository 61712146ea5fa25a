"""For every route in the route table, a member of project B goes after project A's objects.

Each attempt must be refused or answer only with B's data, and A's data must be unchanged.
"""

from __future__ import annotations

import re

import pytest

from mlflow_bridge.edge.routes import ROUTES, Route
from tests.api import Api
from tests.security.conftest import SECRET_MODEL, Target, snapshot

REFUSED_STATUSES = {400, 403, 404, 405}


def path_for(route: Route, prefix: str, target: Target) -> str:
    """The route's URL with each path argument pointing at one of A's objects."""
    fills = {
        "model_id": target.logged_model_id,
        "trace_id": target.trace_id,
        "request_id": target.trace_id,
        "dataset_id": target.dataset_id,
        "artifact_path": f"workspaces/{target.workspace}/{target.artifact_path}",
        "workspace_name": target.workspace,
        "path": "index.html",
        "filename": "index.html",
    }
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: fills.get(m.group(1), "x"), route.rule)
    if route.rule.startswith(("/2.0", "/3.0")):
        path = f"/{prefix}{path}"
    return path.lstrip("/")


def fields_for(target: Target) -> dict:
    """Every field a request may use to name an object, each naming one of A's."""
    return {
        "run_id": target.run_id,
        "experiment_id": target.experiment_id,
        "experiment_ids": [target.experiment_id],
        "model_id": target.logged_model_id,
        "trace_id": target.trace_id,
        "trace_ids": [target.trace_id],
        "request_id": target.trace_id,
        "dataset_id": target.dataset_id,
        "name": SECRET_MODEL,
        "version": "1",
        "alias": "champion",
        "key": "secret",
        "value": "overwritten",
        "path": "secret.txt",
    }


def attack(api: Api, route: Route, prefix: str, target: Target):
    path = path_for(route, prefix, target)
    fields = fields_for(target)
    if route.method in ("GET", "DELETE") and "artifact" in path:
        return api.call(route.method, path, params=fields)
    if route.method == "GET":
        return api.call("GET", path, params=fields)
    return api.call(route.method, path, json=fields)


ATTACKED = [route for route in ROUTES if route.rule != "/"]


@pytest.mark.parametrize("prefix", ["api", "ajax-api"])
def test_it_refuses_or_answers_only_project_b_data_on_every_route(prefix, attacker, target):
    leaks = []
    for route in ATTACKED:
        response = attack(attacker, route, prefix, target)
        assert response.status_code < 500, (route, response.status_code, response.text[:300])
        if response.status_code in REFUSED_STATUSES:
            continue
        leaked = [marker for marker in target.markers if marker in response.text]
        if leaked:
            leaks.append((route.method, route.rule, response.status_code, leaked))

    assert leaks == []


def test_it_answers_404_on_every_route_of_project_a_to_a_non_member(site, cast, target):
    outsider = Api(site.tracking_uri(cast.project.path), cast.otto.token)
    missing = Api(site.tracking_uri("ml/team/missing"), cast.otto.token)

    for route in ROUTES:
        on_a = attack(outsider, route, "api", target)
        on_missing = attack(missing, route, "api", target)
        assert on_a.status_code == 404, route
        assert on_a.content == on_missing.content, route


def test_it_leaves_project_a_unchanged_after_every_attack(site_project_a, attacker, target):
    api_a, _ = site_project_a
    before = snapshot(api_a, target)

    for prefix in ("api", "ajax-api"):
        for route in ATTACKED:
            attack(attacker, route, prefix, target)

    assert snapshot(api_a, target) == before
