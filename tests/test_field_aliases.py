"""Protobuf's JSON parser, which MLflow reads every request message with, also takes a field's
lowerCamelCase JSON name (`runId` for `run_id`): the bridge's checks, rewrites and author
stamp look for the proto names, so a body spelling a field the other way is refused."""

from __future__ import annotations

import json
import uuid

import pytest

from mlflow_bridge.edge import messages
from mlflow_bridge.edge.errors import BridgeError
from tests.inprocess import Tracking

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_projects(client, gitlab, settings) -> tuple[Tracking, Tracking]:
    settings.GITLAB_URL = gitlab.url
    user = gitlab.add_user("aliaser")
    ours, theirs = (gitlab.add_project(f"alias/{side}-{uuid.uuid4().hex[:8]}") for side in "ab")
    ours.direct[user.id] = theirs.direct[user.id] = 30
    return Tracking(client, ours.path, user.token), Tracking(client, theirs.path, user.token)


def start_trace(tracking: Tracking, trace_info: dict) -> tuple[int, dict]:
    url = tracking.prefix + "api/3.0/mlflow/traces"
    body = {
        "trace": {
            "trace_info": {
                "trace_id": f"tr-{uuid.uuid4().hex}",
                "state": "OK",
                "request_time": "2026-01-01T00:00:00Z",
                **trace_info,
            }
        }
    }
    response = tracking.client.post(url, json.dumps(body), content_type="application/json",
                                    **tracking.auth)  # fmt: skip
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, json.loads(content)


def test_it_refuses_a_trace_in_another_projects_experiment_named_by_json_names(two_projects):
    ours, theirs = two_projects
    their_experiment, _ = theirs.new_run(f"secret-{uuid.uuid4().hex}")

    location = {"type": "MLFLOW_EXPERIMENT", "mlflowExperiment": {"experimentId": their_experiment}}
    status, answer = start_trace(ours, {"trace_location": location})

    assert (status, answer["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), answer


def test_it_refuses_a_trace_author_in_metadata_named_by_its_json_name(two_projects):
    ours, _ = two_projects
    experiment, _ = ours.new_run(f"traced-{uuid.uuid4().hex}")

    status, answer = start_trace(ours, {
        "trace_location": {"type": "MLFLOW_EXPERIMENT",
                           "mlflow_experiment": {"experiment_id": experiment}},
        "traceMetadata": {"mlflow.user": "mallory"}})  # fmt: skip

    assert (status, answer["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), answer
    assert "trace_metadata" in answer["message"]


@pytest.mark.parametrize(
    ("rule", "document"),
    [
        pytest.param("/api/2.0/mlflow/runs/create", {"userId": "mallory"}, id="author"),
        pytest.param("/api/3.0/mlflow/traces", {"trace": {"trace_info": {"trace_location": {
            "type": "MLFLOW_EXPERIMENT", "mlflowExperiment": {"experiment_id": "0"}}}}},
            id="nested experiment"),
        pytest.param("/api/3.0/mlflow/traces", {"trace": {"trace_info": {
            "traceMetadata": {"mlflow.user": "mallory"}}}}, id="trace metadata"),
    ],
)  # fmt: skip
def test_it_refuses_a_field_spelled_by_its_json_name_at_any_depth(rule, document):
    with pytest.raises(BridgeError, match="spelled"):
        messages.check_parses("POST", rule, document)


def test_it_leaves_the_keys_of_a_map_alone():
    document = {
        "trace": {"trace_info": {"trace_metadata": {"runId": "x"}, "tags": {"userId": "y"}}}
    }

    assert messages.check_parses("POST", "/api/3.0/mlflow/traces", document) is not None
