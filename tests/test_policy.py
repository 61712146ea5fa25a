"""What clients may set (policy.py), in every shape a request carries keys: authors become
the caller, storage locations and CI provenance are refused with a 400 naming the field.

Dave is a Developer of ml/policy/<n>; every object he makes says "dave", whatever he claims."""

from __future__ import annotations

import json
import os

import pytest

from mlflow_bridge.embedded import policy
from tests.gitlab_double import GitLabDouble
from tests.inprocess import Tracking, new_member
from tests.test_trace_locations import otlp_span, post_spans

pytestmark = pytest.mark.django_db


class Rest:
    """Any MLflow REST path below the project's `ajax-api/`, with a JSON body."""

    def __init__(self, tracking: Tracking):
        self.tracking = tracking

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        tracking = self.tracking
        url = tracking.prefix + "ajax-api/" + path
        if method == "GET":
            response = tracking.client.get(url, body or {}, **tracking.auth)
        else:
            response = tracking.client.generic(method, url, json.dumps(body or {}),
                                               content_type="application/json",
                                               **tracking.auth)  # fmt: skip
        content = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, json.loads(content) if content else {}

    def ok(self, method: str, path: str, body: dict | None = None) -> dict:
        status, answer = self.call(method, path, body)
        assert status == 200, answer
        return answer


@pytest.fixture(autouse=True)
def gitlab_url(settings, gitlab):
    settings.GITLAB_URL = gitlab.url


@pytest.fixture
def dave(client, gitlab: GitLabDouble) -> Rest:
    tracking = new_member(client, gitlab, 30, "dave-policy", "ml/policy")
    rest = Rest(tracking)
    rest.username = tracking.username
    rest.experiment_id = rest.ok("POST", "2.0/mlflow/experiments/create", {"name": "e"})[
        "experiment_id"
    ]
    return rest


def new_trace(dave: Rest, attributes: dict[str, str] | None = None) -> str:
    trace_id = os.urandom(16)
    assert post_spans(dave.tracking, otlp_span(trace_id, attributes or {}))[0] == 200
    return f"tr-{trace_id.hex()}"


def as_mapping(pairs: list[dict]) -> dict:
    return {pair["key"]: pair["value"] for pair in pairs}


class TestAuthors:
    def test_it_makes_the_caller_the_author_of_an_otlp_trace(self, dave):
        trace_id = new_trace(dave, {"mlflow.traceTag.mlflow.user": "someone-else"})

        info = dave.ok("GET", f"2.0/mlflow/traces/{trace_id}/info")["trace_info"]

        assert as_mapping(info["tags"])["mlflow.user"] == dave.username

    def test_it_makes_the_caller_the_author_of_a_dataset_whose_tags_are_a_json_string(self, dave):
        created = dave.ok("POST", "3.0/mlflow/datasets/create", {
            "name": "d", "experiment_ids": [dave.experiment_id],
            "tags": json.dumps({"mlflow.user": "someone-else", "team": "nlp"})})  # fmt: skip

        dataset = created["dataset"]
        assert dataset["created_by"] == dave.username
        assert json.loads(dataset["tags"]) == {"mlflow.user": dave.username, "team": "nlp"}

    def test_it_makes_the_caller_the_author_of_dataset_records(self, dave):
        body = {"name": "d", "experiment_ids": [dave.experiment_id]}
        dataset_id = dave.ok("POST", "3.0/mlflow/datasets/create", body)["dataset"]["dataset_id"]
        records = [{"inputs": {"q": 1}, "tags": {"mlflow.user": "someone-else"}}]

        dave.ok("POST", f"3.0/mlflow/datasets/{dataset_id}/records",
                {"records": json.dumps(records)})  # fmt: skip

        stored = json.loads(dave.ok("GET", f"3.0/mlflow/datasets/{dataset_id}/records")["records"])
        assert [record["created_by"] for record in stored] == [dave.username]
        assert [record["tags"]["mlflow.user"] for record in stored] == [dave.username]

    def test_it_makes_the_caller_the_author_in_a_v2_traces_request_metadata_list(self, dave):
        started = dave.ok("POST", "2.0/mlflow/traces", {
            "experiment_id": dave.experiment_id, "timestamp_ms": 1,
            "request_metadata": [{"key": "mlflow.user", "value": "someone-else"}],
            "tags": [{"key": "mlflow.user", "value": "someone-else"}]})  # fmt: skip

        info = started["trace_info"]
        assert as_mapping(info["request_metadata"])["mlflow.user"] == dave.username
        assert as_mapping(info["tags"])["mlflow.user"] == dave.username

    def test_it_makes_the_caller_the_source_of_a_human_assessment(self, dave):
        trace_id = new_trace(dave)

        created = dave.ok("POST", f"3.0/mlflow/traces/{trace_id}/assessments", {"assessment": {
            "assessment_name": "quality", "trace_id": trace_id, "feedback": {"value": True},
            "source": {"source_type": "HUMAN", "source_id": "someone-else"}}})  # fmt: skip

        assert created["assessment"]["source"]["source_id"] == dave.username

    def test_it_keeps_a_machine_source_as_sent(self, dave):
        trace_id = new_trace(dave)

        created = dave.ok("POST", f"3.0/mlflow/traces/{trace_id}/assessments", {"assessment": {
            "assessment_name": "quality", "trace_id": trace_id, "feedback": {"value": True},
            "source": {"source_type": "LLM_JUDGE", "source_id": "gpt-judge"}}})  # fmt: skip

        assert created["assessment"]["source"]["source_id"] == "gpt-judge"


class TestServerKeys:
    @pytest.mark.parametrize(("path", "body", "field"), [
        pytest.param("3.0/mlflow/datasets/create",
                     {"name": "d", "tags": json.dumps({"mlflow.artifactLocation": "file:///"})},
                     "mlflow.artifactLocation", id="dataset tags string"),
        pytest.param("2.0/mlflow/traces",
                     {"timestamp_ms": 1, "request_metadata": [
                         {"key": "mlflow.trace.spansLocation", "value": "ARTIFACT_REPO"}]},
                     "mlflow.trace.spansLocation", id="request_metadata list"),
        pytest.param("2.0/mlflow/traces",
                     {"timestamp_ms": 1, "tags": [{"key": "gitlab.job_id", "value": "1"}]},
                     "gitlab.job_id", id="CI provenance"),
        pytest.param("2.0/mlflow/runs/create",
                     {"tags": [{"key": "mlflow.artifactLocation", "value": "file:///"}]},
                     "mlflow.artifactLocation", id="run tags list"),
        pytest.param("3.0/mlflow/traces",
                     {"trace": {"trace_info": {"tags": {"mlflow.trace.archiveLocation": "s3://x"}}}},
                     "mlflow.trace.archiveLocation", id="nested tags mapping"),
        pytest.param("2.0/mlflow/experiments/set-experiment-tag",
                     {"key": "mlflow.experiment.futureLocation", "value": "x"},
                     "mlflow.experiment.futureLocation", id="a location key MLflow adds later"),
    ])  # fmt: skip
    def test_it_refuses_a_server_key_naming_it(self, path, body, field, dave):
        body = {**body, "experiment_id": dave.experiment_id}
        if path.startswith("3.0/mlflow/datasets"):
            body = {**body, "experiment_ids": [body.pop("experiment_id")]}

        status, error = dave.call("POST", path, body)

        assert status == 400, error
        assert error["error_code"] == "INVALID_PARAMETER_VALUE"
        assert field in error["message"]


def mlflow_constants() -> set[str]:
    """Every tag and metadata key MLflow defines a constant for."""
    import mlflow.utils.mlflow_tags as tags
    from mlflow.tracing.constant import TraceMetadataKey, TraceTagKey

    namespaces = (vars(tags), vars(TraceMetadataKey), vars(TraceTagKey))
    return {value for namespace in namespaces for name, value in namespace.items()
            if name.isupper() and isinstance(value, str)}  # fmt: skip


def served_message_fields() -> set[tuple[str, str]]:
    """(field, message) for every field, at any depth, of the request message of a route the
    table serves, whose name matches policy.FIELD_PATTERN."""
    from mlflow_bridge.edge.messages import _message_classes
    from mlflow_bridge.edge.routes import REFUSED, ROUTES
    from mlflow_bridge.embedded import mlflow_app

    mlflow_app.flask_app()
    served = {(route.method, route.rule) for route in ROUTES if route.action is not REFUSED}
    found, seen = set(), set()
    pending = [cls.DESCRIPTOR for key, cls in _message_classes().items() if key in served]
    while pending:
        descriptor = pending.pop()
        if descriptor.full_name in seen:
            continue
        seen.add(descriptor.full_name)
        for field in descriptor.fields:
            if policy.FIELD_PATTERN.search(field.name):
                found.add((field.name, descriptor.full_name))
            if field.message_type is not None:
                pending.append(field.message_type)
    return found


class TestPolicyTable:
    def test_it_classifies_every_tag_constant_mlflow_defines(self):
        classified = policy.CLIENT_KEYS | policy.AUTHOR_KEYS | set(policy.SERVER_KEYS)

        unclassified = mlflow_constants() - classified

        assert not unclassified, (
            f"MLflow defines tag keys policy.py does not classify: {sorted(unclassified)}. "
            "Add each to SERVER_KEYS, AUTHOR_KEYS or CLIENT_KEYS."
        )

    def test_it_classifies_every_author_location_or_source_field_of_served_messages(self):
        unclassified = {field for field, _ in served_message_fields()} - set(policy.FIELDS)

        assert not unclassified, (
            f"MLflow's request messages have fields policy.py does not classify: "
            f"{sorted(unclassified)}. Add each to policy.FIELDS."
        )

    def test_it_lists_no_key_twice(self):
        owners = [policy.CLIENT_KEYS, policy.AUTHOR_KEYS, set(policy.SERVER_KEYS)]

        assert sum(map(len, owners)) == len(set().union(*owners))
