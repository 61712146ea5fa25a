"""The route table: every MLflow route has a rule, and the rules say what they should."""

import pytest

from mlflow_bridge.edge.routes import (
    _TABLE,
    ROUTES,
    Action,
    BodyKind,
    BridgeAnswer,
    bridge_answer_for,
    route_for,
    uncovered_routes,
)
from mlflow_bridge.embedded.mlflow_app import flask_app


@pytest.fixture(scope="module")
def mlflow_rules():
    return list(flask_app().url_map.iter_rules())


class TestCoverage:
    def test_it_has_a_rule_for_every_route_and_method_mlflow_serves(self, mlflow_rules):
        assert uncovered_routes(mlflow_rules) == []

    def test_it_reports_a_route_whose_row_was_removed(self, mlflow_rules):
        table = dict(_TABLE)
        del table[("POST", "/2.0/mlflow/runs/log-metric")]

        missing = uncovered_routes(mlflow_rules, table)

        assert ("POST", "/api/2.0/mlflow/runs/log-metric") in missing
        assert ("POST", "/ajax-api/2.0/mlflow/runs/log-metric") in missing

    def test_it_has_no_row_for_a_route_mlflow_does_not_serve(self, mlflow_rules):
        served = {(m, r.rule.replace("/ajax-api", "").replace("/api", "", 1))
                  for r in mlflow_rules for m in r.methods}  # fmt: skip
        stale = [(row.method, row.rule) for row in ROUTES if (row.method, row.rule) not in served]
        assert stale == []

    def test_it_has_one_row_per_route_and_method(self):
        assert len(ROUTES) == len(_TABLE)


@pytest.mark.parametrize(
    ("method", "rule", "action"),
    [
        pytest.param("POST", "/api/2.0/mlflow/runs/search", Action.READ, id="search is a read"),
        pytest.param("POST", "/ajax-api/2.0/mlflow/runs/search", Action.READ, id="ajax prefix"),
        pytest.param("POST", "/api/2.0/mlflow/runs/log-metric", Action.UPDATE, id="log metric"),
        pytest.param("POST", "/api/2.0/mlflow/experiments/create", Action.CREATE, id="experiment"),
        pytest.param("DELETE", "/api/2.0/mlflow/registered-models/delete", Action.DELETE,
                     id="delete model"),
        pytest.param("POST", "/api/2.0/mlflow/registered-models/alias", Action.UPDATE,
                     id="set alias"),
        pytest.param("POST", "/api/2.0/mlflow/model-versions/transition-stage", Action.UPDATE,
                     id="stage transition"),
        pytest.param("PUT", "/api/2.0/mlflow-artifacts/artifacts/<path:artifact_path>",
                     Action.CREATE, id="artifact upload"),
        pytest.param("HEAD", "/api/2.0/mlflow/runs/get", Action.READ, id="HEAD reads"),
        pytest.param("OPTIONS", "/api/2.0/mlflow/runs/create", Action.READ, id="OPTIONS reads"),
        pytest.param("POST", "/v1/traces", Action.CREATE, id="OTLP ingestion writes"),
        pytest.param("POST", "/api/3.0/mlflow/workspaces", Action.REFUSED, id="workspaces"),
        pytest.param("DELETE", "/ajax-api/3.0/mlflow/workspaces/<workspace_name>",
                     Action.REFUSED, id="workspace delete via ajax"),
        pytest.param("POST", "/api/2.0/mlflow/webhooks", Action.REFUSED, id="webhooks"),
        pytest.param("POST", "/api/3.0/mlflow/gateway/secrets/create", Action.REFUSED,
                     id="gateway secrets"),
        pytest.param("POST", "/api/3.0/mlflow/prompt-optimization/jobs", Action.REFUSED,
                     id="prompt optimisation"),
    ],
)  # fmt: skip
def test_it_gives_each_route_its_action(method, rule, action):
    assert route_for(rule, method).action is action


def test_it_refuses_a_rule_that_has_no_row():
    assert route_for("/api/2.0/mlflow/brand-new-route", "POST") is None


def test_it_names_the_refused_feature():
    assert route_for("/api/3.0/mlflow/gateway/secrets/list", "GET").feature.startswith("the AI")


def test_it_checks_the_ids_otlp_carries_in_headers():
    route = route_for("/v1/traces", "POST")

    assert route.body is BodyKind.OTLP
    assert dict(route.headers) == {"HTTP_X_MLFLOW_EXPERIMENT_ID": "experiment_id",
                                   "HTTP_X_MLFLOW_RUN_ID": "run_id"}  # fmt: skip


@pytest.mark.parametrize(
    ("method", "rest", "expected"),
    [
        pytest.param("GET", "/ajax-api/3.0/mlflow/workspaces", BridgeAnswer.WORKSPACE_LIST,
                     id="workspace-list"),
        pytest.param("HEAD", "/api/3.0/mlflow/workspaces/p-42", BridgeAnswer.WORKSPACE,
                     id="own-workspace"),
        pytest.param("GET", "/ajax-api/3.0/mlflow/workspaces/p-7", None, id="other-workspace"),
        pytest.param("POST", "/ajax-api/3.0/mlflow/workspaces", None, id="workspace-create"),
        pytest.param("GET", "/ajax-api/3.0/mlflow/assistant/config",
                     BridgeAnswer.ASSISTANT_CONFIG, id="assistant-config"),
        pytest.param("GET", "/ajax-api/2.0/mlflow/experiments/p-42", None, id="not-a-workspace"),
    ],
)  # fmt: skip
def test_it_names_the_ui_reads_the_bridge_answers_itself(method, rest, expected):
    assert bridge_answer_for(method, rest, workspace="p-42") is expected
