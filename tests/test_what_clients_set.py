"""Acceptance: no reserved key a client sends is stored as the client wrote it, in any shape
or route family, and no such request is answered with a 5xx (policy.py, in-process).

Hypothesis draws a route family and an entry shape (JSON body: tags lists and mappings,
set-tag bodies, key/value lists, nested trace info; JSON inside string fields; query strings;
headers; OTLP protobuf and JSON attributes; assessment sources), puts a reserved key in it
with a unique value, sends it as Dave (Developer), and then looks for that value in every text
column of MLflow's database: a server key must be refused, an author replaced by "dave-…".
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlflow_bridge.embedded import policy
from tests.gitlab_double import GitLabDouble
from tests.inprocess import Tracking, new_member
from tests.test_trace_locations import otlp_span

pytestmark = pytest.mark.django_db

RESERVED_KEYS = sorted(
    {*policy.SERVER_KEYS, *policy.AUTHOR_KEYS, "mlflow.experiment.futureLocation"}
)


@dataclass
class World:
    """Dave's project with one object of each kind a request can tag."""

    tracking: Tracking
    experiment_id: str
    run_id: str
    trace_id: str
    model_name: str
    logged_model_id: str
    dataset_id: str

    def send(self, method: str, path: str, body: bytes | None = None, query: str = "",
             content_type: str = "application/json", **headers):  # fmt: skip
        url = self.tracking.prefix + path + (f"?{query}" if query else "")
        response = self.tracking.client.generic(method, url, body or b"",
                                                content_type=content_type,
                                                **self.tracking.auth, **headers)  # fmt: skip
        if response.streaming:
            b"".join(response.streaming_content)
        return response.status_code


def _ok(tracking: Tracking, path: str, body: dict) -> dict:
    response = tracking.client.post(tracking.prefix + "ajax-api/" + path, json.dumps(body),
                                    content_type="application/json", **tracking.auth)  # fmt: skip
    content = b"".join(response.streaming_content) if response.streaming else response.content
    assert response.status_code == 200, content
    return json.loads(content)


@pytest.fixture
def world(client, gitlab: GitLabDouble, settings) -> World:
    settings.GITLAB_URL = gitlab.url
    tracking = new_member(client, gitlab, 30, "dave-shapes", "ml/shapes")
    experiment_id, run_id = tracking.new_run("shapes")
    trace_id = os.urandom(16)
    response = tracking.client.post(tracking.prefix + "v1/traces", otlp_span(trace_id, {}),
                                    content_type="application/x-protobuf",
                                    HTTP_X_MLFLOW_EXPERIMENT_ID=experiment_id,
                                    **tracking.auth)  # fmt: skip
    assert response.status_code == 200
    _ok(tracking, "2.0/mlflow/registered-models/create", {"name": "m"})
    logged = _ok(tracking, "2.0/mlflow/logged-models", {"experiment_id": experiment_id})
    dataset = _ok(tracking, "3.0/mlflow/datasets/create",
                  {"name": "d", "experiment_ids": [experiment_id]})  # fmt: skip
    return World(tracking, experiment_id, run_id, f"tr-{trace_id.hex()}", "m",
                 logged["model"]["info"]["model_id"], dataset["dataset"]["dataset_id"])  # fmt: skip


def kv(key: str, value: str) -> list[dict]:
    return [{"key": key, "value": value}]


def otlp_json(key: str, value: str, world: World) -> bytes:
    span = {"traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(), "name": "root",
            "startTimeUnixNano": "1000", "endTimeUnixNano": "2000",
            "attributes": [{"key": key, "value": {"stringValue": value}}]}  # fmt: skip
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def otlp_resource(key: str, value: str) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message = ExportTraceServiceRequest()
    message.ParseFromString(otlp_span(os.urandom(16), {}))
    attribute = message.resource_spans[0].resource.attributes.add()
    attribute.key, attribute.value.string_value = key, value
    return message.SerializeToString()


J = "ajax-api/2.0/mlflow/"
J3 = "ajax-api/3.0/mlflow/"
# (family, shape) → the request carrying (key, value) for a World: method, path, JSON body or
# raw bytes, and send() keywords.
Shape = Callable[[World, str, str], tuple[str, str, object, dict]]
SHAPES: dict[str, Shape] = {
    "experiments: tags list on create": lambda w, k, v: (
        "POST", J + "experiments/create", {"name": uuid.uuid4().hex, "tags": kv(k, v)}, {}),
    "experiments: set-tag body": lambda w, k, v: (
        "POST", J + "experiments/set-experiment-tag",
        {"experiment_id": w.experiment_id, "key": k, "value": v}, {}),
    "runs: tags list on create": lambda w, k, v: (
        "POST", J + "runs/create", {"experiment_id": w.experiment_id, "tags": kv(k, v)}, {}),
    "runs: set-tag body": lambda w, k, v: (
        "POST", J + "runs/set-tag", {"run_id": w.run_id, "key": k, "value": v}, {}),
    "runs: log-batch tags": lambda w, k, v: (
        "POST", J + "runs/log-batch", {"run_id": w.run_id, "tags": kv(k, v)}, {}),
    "runs: query string": lambda w, k, v: (
        "POST", J + "runs/set-tag", {"run_id": w.run_id, "key": "q", "value": "q"},
        {"query": f"key={k}&value={v}"}),
    "runs: headers": lambda w, k, v: (
        "POST", J + "runs/set-tag", {"run_id": w.run_id, "key": "h", "value": "h"},
        {f"HTTP_X_{k.upper().replace('.', '_')}": v, "HTTP_X_MLFLOW_TAG": f"{k}={v}"}),
    "registered models: tags list on create": lambda w, k, v: (
        "POST", J + "registered-models/create", {"name": uuid.uuid4().hex, "tags": kv(k, v)}, {}),
    "registered models: set-tag body": lambda w, k, v: (
        "POST", J + "registered-models/set-tag", {"name": w.model_name, "key": k, "value": v}, {}),
    "model versions: tags list on create": lambda w, k, v: (
        "POST", J + "model-versions/create",
        {"name": w.model_name, "source": f"runs:/{w.run_id}/m", "run_id": w.run_id,
         "tags": kv(k, v)}, {}),
    "logged models: tags list": lambda w, k, v: (
        "PATCH", J + f"logged-models/{w.logged_model_id}/tags", {"tags": kv(k, v)}, {}),
    "traces v2: request_metadata and tags lists": lambda w, k, v: (
        "POST", J + "traces", {"experiment_id": w.experiment_id, "timestamp_ms": 1,
                               "request_metadata": kv(k, v), "tags": kv(k, v)}, {}),
    "traces v2: tag body": lambda w, k, v: (
        "PATCH", J + f"traces/{w.trace_id}/tags", {"key": k, "value": v}, {}),
    "traces v3: nested tags and metadata mappings": lambda w, k, v: (
        "POST", J3 + "traces", {"trace": {"trace_info": {
            "trace_id": f"tr-{os.urandom(16).hex()}", "request_time": "2025-01-01T00:00:00Z",
            "trace_location": {"type": "MLFLOW_EXPERIMENT",
                               "mlflow_experiment": {"experiment_id": w.experiment_id}},
            "state": "OK", "tags": {k: v}, "trace_metadata": {k: v}}}}, {}),
    "traces v3: tag body": lambda w, k, v: (
        "PATCH", J3 + f"traces/{w.trace_id}/tags", {"key": k, "value": v}, {}),
    "otlp protobuf: root span attribute": lambda w, k, v: (
        "POST", "v1/traces", otlp_span(os.urandom(16), {policy_prefix(k): v}),
        {"content_type": "application/x-protobuf", "HTTP_X_MLFLOW_EXPERIMENT_ID": "0"}),
    "otlp protobuf: resource attribute": lambda w, k, v: (
        "POST", "v1/traces", otlp_resource(policy_prefix(k), v),
        {"content_type": "application/x-protobuf", "HTTP_X_MLFLOW_EXPERIMENT_ID": "0"}),
    "otlp json: root span attribute": lambda w, k, v: (
        "POST", "v1/traces", otlp_json(policy_prefix(k), v, w),
        {"content_type": "application/json", "HTTP_X_MLFLOW_EXPERIMENT_ID": "0"}),
    "datasets: tags JSON string on create": lambda w, k, v: (
        "POST", J3 + "datasets/create", {"name": uuid.uuid4().hex, "tags": json.dumps({k: v}),
                                        "experiment_ids": [w.experiment_id]}, {}),
    "datasets: tags JSON string on update": lambda w, k, v: (
        "PATCH", J3 + f"datasets/{w.dataset_id}/tags", {"tags": json.dumps({k: v})}, {}),
    "datasets: records JSON string": lambda w, k, v: (
        "POST", J3 + f"datasets/{w.dataset_id}/records",
        {"records": json.dumps([{"inputs": {"q": uuid.uuid4().hex}, "tags": {k: v}}])}, {}),
    "assessments: human source": lambda w, k, v: (
        "POST", J3 + f"traces/{w.trace_id}/assessments", {"assessment": {
            "assessment_name": "quality", "trace_id": w.trace_id, "feedback": {"value": True},
            "source": {"source_type": "HUMAN", "source_id": v}, "metadata": {k: v}}}, {}),
}  # fmt: skip
# The assessment's metadata is the client's (MLflow reads no author or location there):
# only its human source is checked.
CLIENT_PLACES = {"assessments: human source": "metadata"}


def policy_prefix(key: str) -> str:
    return "mlflow.traceTag." + key


def stored_values(marker: str) -> list[str]:
    """Every text cell of MLflow's database that holds `marker`, as table.column."""
    import sqlalchemy as sa
    from mlflow.server.handlers import _get_tracking_store
    from mlflow.store.db.base_sql_model import Base

    text_types = (sa.String, sa.Text, sa.JSON)
    found = []
    with _get_tracking_store().ManagedSessionMaker() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, text_types)]
            for column in columns:
                text = sa.cast(column, sa.Text) if isinstance(column.type, sa.JSON) else column
                hit = session.execute(
                    sa.select(sa.func.count()).select_from(table).where(
                        text.like(f"%{marker}%"))).scalar()  # fmt: skip
                if hit:
                    found.append(f"{table.name}.{column.name}")
    return found


def encoded(body: object) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(shape=st.sampled_from(sorted(SHAPES)), key=st.sampled_from(RESERVED_KEYS))
def test_it_stores_no_reserved_key_as_the_client_wrote_it(shape, key, world):
    marker = f"forged-{uuid.uuid4().hex}"
    if shape in CLIENT_PLACES:
        marker_place = CLIENT_PLACES[shape]
    method, path, body, extra = SHAPES[shape](world, key, marker)

    status = world.send(method, path, encoded(body), **extra)

    assert status < 500, (shape, key, status)
    found = stored_values(marker)
    if shape in CLIENT_PLACES:
        found = [place for place in found if marker_place not in place]
    assert not found, (shape, key, status, found)


# Shapes MLflow stores nothing from, whatever the key: the property test still sends them.
NEVER_STORED = {"runs: query string", "runs: headers", "otlp protobuf: resource attribute"}


@pytest.mark.parametrize("shape", sorted(set(SHAPES) - NEVER_STORED))
def test_each_shape_stores_a_client_key_as_written(shape, world):
    """The shapes are real ways in: the same request with a client's own key stores it."""
    marker = f"kept-{uuid.uuid4().hex}"
    method, path, body, extra = SHAPES[shape](world, "team", marker)

    status = world.send(method, path, encoded(body), **extra)

    assert status == 200, (shape, status)
    assert stored_values(marker), shape
