"""Request rewriting: experiment "0" and the " (<project id>)" name suffix."""

import json

import pytest

from mlflow_bridge.edge.errors import BridgeError
from mlflow_bridge.edge.rewrite import RequestRewriter, plainly_lacks
from mlflow_bridge.edge.routes import route_for


def rewriter(rule: str, method: str = "POST") -> RequestRewriter:
    return RequestRewriter(route_for(rule, method), 42, lambda: "7")


@pytest.mark.parametrize(
    ("rule", "method", "body", "expected"),
    [
        pytest.param("/api/2.0/mlflow/experiments/create", "POST", {"name": "baseline (42)"},
                     {"name": "baseline"}, id="experiment create"),
        pytest.param("/api/2.0/mlflow/experiments/update", "POST",
                     {"experiment_id": "3", "new_name": "b (42)"},
                     {"experiment_id": "3", "new_name": "b"}, id="experiment rename"),
        pytest.param("/api/2.0/mlflow/registered-models/rename", "POST",
                     {"name": "m (42)", "new_name": "n (42)"}, {"name": "m", "new_name": "n"},
                     id="model rename"),
        pytest.param("/api/2.0/mlflow/model-versions/create", "POST",
                     {"name": "m (42)", "source": "models:/m-abc"},
                     {"name": "m", "source": "models:/m-abc"}, id="model version"),
        pytest.param("/api/2.0/mlflow/experiments/create", "POST", {"name": "baseline (43)"},
                     {"name": "baseline (43)"}, id="another project's suffix stays"),
        pytest.param("/api/2.0/mlflow/experiments/create", "POST", {"name": "a (42) b"},
                     {"name": "a (42) b"}, id="only a trailing suffix"),
        pytest.param("/api/2.0/mlflow/runs/create", "POST", {"experiment_id": "0"},
                     {"experiment_id": "7"}, id="default experiment"),
        pytest.param("/api/2.0/mlflow/runs/search", "POST", {"experiment_ids": ["0", "3"]},
                     {"experiment_ids": ["7", "3"]}, id="default experiment in a list"),
        pytest.param("/api/3.0/mlflow/traces", "POST",
                     {"trace": {"trace_info": {"trace_location": {"mlflow_experiment": {
                         "experiment_id": "0"}}}}},
                     {"trace": {"trace_info": {"trace_location": {"mlflow_experiment": {
                         "experiment_id": "7"}}}}}, id="default experiment nested in a trace"),
        pytest.param("/api/2.0/mlflow/experiments/create", "POST",
                     {"name": "a", "tags": [{"key": "name", "value": "b (42)"}]},
                     {"name": "a", "tags": [{"key": "name", "value": "b (42)"}]},
                     id="names only at the top level"),
        pytest.param("/api/2.0/mlflow/runs/search", "POST",
                     {"experiment_ids": ["3"], "filter": "tags.name = 'x (42)'"},
                     {"experiment_ids": ["3"], "filter": "tags.name = 'x (42)'"},
                     id="search filters untouched"),
        pytest.param("/api/2.0/mlflow/runs/set-tag", "POST", {"key": "name", "value": "x (42)"},
                     {"key": "name", "value": "x (42)"}, id="no name fields on run routes"),
    ],
)  # fmt: skip
def test_it_rewrites_json_bodies(rule, method, body, expected):
    rewritten, document = rewriter(rule, method).json_body(json.dumps(body).encode())

    assert json.loads(rewritten) == document == expected


@pytest.mark.parametrize(
    ("rule", "query", "expected"),
    [
        pytest.param("/api/2.0/mlflow/experiments/get-by-name", "experiment_name=baseline+%2842%29",
                     "experiment_name=baseline", id="get by name"),
        pytest.param("/api/2.0/mlflow/registered-models/get", "name=m+%2842%29", "name=m",
                     id="registered model"),
        pytest.param("/api/2.0/mlflow/experiments/get", "experiment_id=0", "experiment_id=7",
                     id="default experiment"),
        pytest.param("/api/2.0/mlflow/experiments/get", "experiment_id=3", "experiment_id=3",
                     id="unchanged"),
        pytest.param("/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                     "run_ids=a&experiment_ids=0", "run_ids=a&experiment_ids=7",
                     id="repeated ids"),
    ],
)  # fmt: skip
def test_it_rewrites_query_strings(rule, query, expected):
    assert rewriter(rule, "GET").query_string(query) == expected


def test_it_leaves_a_body_without_changes_byte_for_byte():
    body = b'{"run_id": "abc",  "key": "m", "value": 1.0}'

    assert rewriter("/api/2.0/mlflow/runs/log-metric").json_body(body)[0] is body


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b"\xff\xfe",
        b'"text"',
        b'{"a": ' + b"[" * 101 + b"]" * 101 + b"}",
        b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
    ids=["malformed", "array", "not utf-8", "string", "nested too deep", "nested 5,000 deep"],
)
def test_it_refuses_a_body_that_is_not_a_json_object(body):
    with pytest.raises(BridgeError) as raised:
        rewriter("/api/2.0/mlflow/runs/create").json_body(body)

    assert raised.value.status == 400


NESTED_DEFAULT = {"trace": {"trace_info": {"trace_location": {"mlflow_experiment": {
    "experiment_id": "0"}}}}}  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(json.dumps(NESTED_DEFAULT).encode(), id="plain"),
        pytest.param(json.dumps(NESTED_DEFAULT).replace("_id", "\\u005fid").encode(),
                     id="key spelled with an escape"),
        pytest.param(json.dumps(NESTED_DEFAULT).encode("utf-16"), id="utf-16"),
        pytest.param(json.dumps({**NESTED_DEFAULT, "é": 1}, ensure_ascii=False).encode(),
                     id="not ascii"),
    ],
)  # fmt: skip
def test_it_finds_a_nested_experiment_however_the_body_spells_it(body):
    _, document = rewriter("/api/3.0/mlflow/traces").json_body(body)

    location = document["trace"]["trace_info"]["trace_location"]
    assert location["mlflow_experiment"]["experiment_id"] == "7"


@pytest.mark.parametrize(
    ("body", "lacks"),
    [
        pytest.param(b'{"run_id": "r", "metrics": []}', True, id="plain, absent"),
        pytest.param(b'{"run_id": "r", "experiment_id": "0"}', False, id="present"),
        pytest.param(b'{"experiment\\u005fid": "0"}', False, id="an escape may spell it"),
        pytest.param('{"run_id": "é"}'.encode(), False, id="not ascii"),
        pytest.param('{"run_id": "r"}'.encode("utf-16-le"), False, id="utf-16"),
    ],
)  # fmt: skip
def test_it_trusts_the_bytes_only_when_they_spell_every_name_plainly(body, lacks):
    assert plainly_lacks(body, b"experiment_id") is lacks


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32-le"])
def test_it_refuses_a_nul_escape_in_a_body_of_any_encoding(encoding):
    body = '{"run_id": "r", "key": "k", "value": "a\\u0000b"}'.encode(encoding)

    with pytest.raises(BridgeError, match="NUL"):
        rewriter("/api/2.0/mlflow/runs/set-tag").json_body(body)
