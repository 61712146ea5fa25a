"""Traces whose spans live in the artifact store (issue 22, "never a 5xx").

A trace logged in one piece (v3 start-trace, then its traces.json uploaded: older clients, or
data imported from mlflow-sharinghub) keeps its spans beside its artifacts; its tags say
`mlflow.trace.spansLocation: ARTIFACT_REPO`, or nothing. MLflow's client and UI read those
spans through `get-trace-artifact`; `traces/get` and `traces/batchGet` read only the tracking
store, and a bare `mlflow server` 3.17 answers them 500 ("Trace data not stored in tracking
store"). Here they answer 400 naming the way to the spans; every other trace read serves such a
trace as MLflow does, and a trace whose spans are in the database is served whole.
"""

from __future__ import annotations

import uuid

import pytest

from mlflow_bridge.embedded import mlflow_app
from tests.api import Api
from tests.test_compatibility import export, otlp_spans

SPANS = b'{"spans": [], "request": "{\\"question\\": 1}", "response": "42"}'
PREFIXES = ["api", "ajax-api"]


@pytest.fixture
def api(site, cast) -> Api:
    return Api(site.tracking_uri(cast.project.path), cast.olivia.token)


@pytest.fixture
def experiment_id(api) -> str:
    return api.ok("POST", "api/2.0/mlflow/experiments/create",
                  json={"name": f"traced-{uuid.uuid4().hex[:8]}"})["experiment_id"]  # fmt: skip


def artifact_trace(api: Api, experiment_id: str) -> str:
    """A trace logged in one piece: its info by v3 start-trace, its spans as traces.json."""
    created = api.ok("POST", "api/3.0/mlflow/traces", json={"trace": {"trace_info": {
        "trace_id": f"tr-{uuid.uuid4().hex}", "request_time": "2026-01-01T00:00:00Z",
        "state": "OK", "trace_location": {"type": "MLFLOW_EXPERIMENT",
        "mlflow_experiment": {"experiment_id": experiment_id}}}}})  # fmt: skip
    created = created["trace"]["trace_info"]
    location = created["tags"]["mlflow.artifactLocation"]
    relative = location.split("/workspaces/", 1)[1].split("/", 1)[1]
    api.ok("PUT", f"api/2.0/mlflow-artifacts/artifacts/{relative}/traces.json", data=SPANS)
    return created["trace_id"]


def tagged_artifact_repo(trace_id: str, workspace: str) -> str:
    """The same trace with the tag MLflow's client writes for it (clients may not set it here:
    policy.py), written through the store as imported data holds it."""
    with mlflow_app.in_workspace(workspace):
        mlflow_app.tracking_store().set_trace_tag(
            trace_id, "mlflow.trace.spansLocation", "ARTIFACT_REPO"
        )
    return trace_id


@pytest.fixture(params=["untagged", "ARTIFACT_REPO"])
def trace_id(request, api, cast, experiment_id) -> str:
    trace_id = artifact_trace(api, experiment_id)
    if request.param == "ARTIFACT_REPO":
        return tagged_artifact_repo(trace_id, f"p-{cast.project.id}")
    return trace_id


def database_trace(api: Api, experiment_id: str) -> str:
    trace_hex = uuid.uuid4().hex
    response = export(api, otlp_spans(trace_hex, name="in-the-database"), experiment_id)
    assert response.status_code == 200, response.text
    return f"tr-{trace_hex}"


def assert_refused_with_the_way_to_the_spans(response, trace_id: str) -> None:
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert trace_id in answer["message"]
    assert "get-trace-artifact" in answer["message"]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("allow_partial", [None, "true", "false"])
def test_it_answers_get_400_naming_where_the_spans_are_read(api, trace_id, prefix, allow_partial):
    params = {"trace_id": trace_id}
    if allow_partial is not None:
        params["allow_partial"] = allow_partial

    response = api.call("GET", f"{prefix}/3.0/mlflow/traces/get", params=params)

    assert_refused_with_the_way_to_the_spans(response, trace_id)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_it_answers_batch_get_400_naming_the_trace(api, experiment_id, trace_id, prefix):
    in_database = database_trace(api, experiment_id)

    response = api.call("GET", f"{prefix}/3.0/mlflow/traces/batchGet",
                        params={"trace_ids": [in_database, trace_id]})  # fmt: skip

    assert_refused_with_the_way_to_the_spans(response, trace_id)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_it_serves_the_traces_info_and_its_spans_the_way_the_message_names(api, trace_id, prefix):
    infos = api.ok("POST", f"{prefix}/3.0/mlflow/traces/batchGetInfos",
                   json={"trace_ids": [trace_id]})  # fmt: skip
    info = api.ok("GET", f"{prefix}/3.0/mlflow/traces/{trace_id}")
    spans = api.call("GET", "ajax-api/3.0/mlflow/get-trace-artifact",
                     params={"request_id": trace_id})  # fmt: skip

    assert [i["trace_id"] for i in infos["trace_infos"]] == [trace_id]
    assert info["trace"]["trace_info"]["trace_id"] == trace_id
    assert (spans.status_code, spans.content) == (200, SPANS)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_it_serves_a_trace_whose_spans_are_in_the_database_whole(api, experiment_id, prefix):
    trace_id = database_trace(api, experiment_id)

    got = api.ok("GET", f"{prefix}/3.0/mlflow/traces/get", params={"trace_id": trace_id})
    batch = api.ok("GET", f"{prefix}/3.0/mlflow/traces/batchGet", params={"trace_ids": trace_id})

    assert [span["name"] for span in got["trace"]["spans"]] == ["in-the-database"]
    assert [[s["name"] for s in t["spans"]] for t in batch["traces"]] == [["in-the-database"]]
