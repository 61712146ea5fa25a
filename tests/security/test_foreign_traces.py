"""Live (issue 22, finding 1): Otto, a Developer of project B only, tries to make a trace of his
own point at project A's real traces.json, on the shared gunicorn server.

Every way a storage location can get into a trace is refused with a 400 naming the key (OTLP
span attributes as protobuf or JSON, v3 and v2 trace creation with tags or metadata, set-trace-
tag), and a location already stored in MLflow's database (old imported data, written here
straight into the database) is never followed outside project B, however it is spelt.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
import requests
import sqlalchemy
from sqlalchemy.orm import Session

from tests.api import Api
from tests.live import ROOT, LiveServer
from tests.test_trace_locations import otlp_span

SECRET = b'{"spans": [], "request": "project A secret spans"}'
MARKER = b"project A secret"
LOCATION_TAG = "mlflow.artifactLocation"
SPANS_LOCATION_TAG = "mlflow.trace.spansLocation"


def start_trace(api: Api, experiment_id: str, **info: object) -> tuple[int, dict]:
    """A v3 start-trace (what the stock client sends for a trace logged in one piece)."""
    trace_info = {"trace_id": f"tr-{uuid.uuid4().hex}", "request_time": "2026-01-01T00:00:00Z",
                  "state": "OK", "trace_location": {"type": "MLFLOW_EXPERIMENT",
                  "mlflow_experiment": {"experiment_id": experiment_id}}, **info}  # fmt: skip
    response = api.call("POST", "api/3.0/mlflow/traces", json={"trace": {"trace_info": trace_info}})
    return response.status_code, response.json()


def tags_of(info: dict) -> dict[str, str]:
    return dict(info.get("tags", {}))


def trace_artifact(api: Api, trace_id: str, version: str = "3.0"):
    return api.call("GET", f"ajax-api/{version}/mlflow/get-trace-artifact",
                    params={"request_id": trace_id})  # fmt: skip


def backend_engine(server: LiveServer) -> sqlalchemy.Engine:
    """MLflow's database of a live server (its own PostgreSQL database, or SQLite file)."""
    uri = server.env.get("MLFLOW_BACKEND_STORE_URI") or (
        f"sqlite:///{server.data_dir / 'mlflow.sqlite3'}"
    )
    return sqlalchemy.create_engine(uri)


def store_location(server: LiveServer, trace_id: str, location: str) -> None:
    """Write a trace's location tags straight into MLflow's database, as old data may hold."""
    from mlflow.store.tracking.dbmodels.models import SqlTraceTag

    engine = backend_engine(server)
    try:
        with Session(engine) as session, session.begin():
            for key, value in ((LOCATION_TAG, location), (SPANS_LOCATION_TAG, "ARTIFACT_REPO")):
                session.merge(SqlTraceTag(request_id=trace_id, key=key, value=value))
    finally:
        engine.dispose()


class Victim:
    """Project A's trace, its traces.json holding SECRET, read by its owner Olivia."""

    def __init__(self, server: LiveServer, cast):
        self.api = Api(server.tracking_uri(cast.project.path), cast.olivia.token)
        self.experiment_id = self.api.ok("POST", "api/2.0/mlflow/experiments/create",
                                         json={"name": f"traced-{uuid.uuid4().hex[:8]}"}
                                         )["experiment_id"]  # fmt: skip
        status, created = start_trace(self.api, self.experiment_id)
        assert status == 200, created
        info = created["trace"]["trace_info"]
        self.trace_id = info["trace_id"]
        self.location = tags_of(info)[LOCATION_TAG]
        workspace = f"workspaces/p-{cast.project.id}/"
        assert self.location.startswith(f"mlflow-artifacts:/{workspace}"), self.location
        self.relative = self.location.split(workspace, 1)[1]
        self.api.ok("PUT", f"api/2.0/mlflow-artifacts/artifacts/{self.relative}/traces.json",
                    data=SECRET)  # fmt: skip
        self.disk_path = server.data_dir / "artifacts" / workspace / self.relative

    def spellings(self) -> dict[str, str]:
        """The one directory holding traces.json, as each kind of stored location spells it."""
        return {
            "mlflow-artifacts": self.location,
            "file": self.disk_path.as_uri(),
            "relative": os.path.relpath(self.disk_path, ROOT),
            "s3": f"s3://mlflow/{self.location.removeprefix('mlflow-artifacts:/')}",
        }


@pytest.fixture(scope="module")
def victim(gunicorn_server, cast) -> Victim:
    victim = Victim(gunicorn_server, cast)
    # The control: the owner reads her own trace's data.
    response = trace_artifact(victim.api, victim.trace_id)
    assert (response.status_code, response.content) == (200, SECRET)
    assert victim.disk_path.joinpath("traces.json").read_bytes() == SECRET
    return victim


@pytest.fixture(scope="module")
def otto(gunicorn_server, cast) -> tuple[Api, str]:
    api = Api(gunicorn_server.tracking_uri(cast.other_project.path), cast.otto.token)
    name = f"otto-{uuid.uuid4().hex[:8]}"
    experiment_id = api.ok("POST", "api/2.0/mlflow/experiments/create", json={"name": name})[
        "experiment_id"
    ]
    return api, experiment_id


def otlp_json(attributes: dict[str, str]) -> bytes:
    span = {"traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(), "name": "root",
            "startTimeUnixNano": "1000000000", "endTimeUnixNano": "2000000000",
            "attributes": [{"key": key, "value": {"stringValue": value}}
                           for key, value in attributes.items()]}  # fmt: skip
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def post_otlp(api: Api, experiment_id: str, body: bytes, content_type: str):
    return api.call("POST", "v1/traces", data=body,
                    headers={"Content-Type": content_type,
                             "X-Mlflow-Experiment-Id": experiment_id})  # fmt: skip


def own_trace(api: Api, experiment_id: str) -> str:
    status, created = start_trace(api, experiment_id)
    assert status == 200, created
    return created["trace"]["trace_info"]["trace_id"]


ATTRIBUTES = {
    "mlflow.traceTag.mlflow.artifactLocation": "{location}",
    "mlflow.traceTag.mlflow.trace.spansLocation": "ARTIFACT_REPO",
}

# Each way a client could try to store a location: (name, the key the 400 names, the request).
WAYS_IN = {
    "OTLP protobuf span attributes": ("mlflow.traceTag.mlflow.artifactLocation", lambda api, e, loc:
        post_otlp(api, e, otlp_span(os.urandom(16), {k: v.format(location=loc)
                  for k, v in ATTRIBUTES.items()}), "application/x-protobuf")),
    "OTLP JSON span attributes": ("mlflow.traceTag.mlflow.artifactLocation", lambda api, e, loc:
        post_otlp(api, e, otlp_json({k: v.format(location=loc) for k, v in ATTRIBUTES.items()}),
                  "application/json")),
    "v3 start-trace tags": (LOCATION_TAG, lambda api, e, loc: api.call(
        "POST", "api/3.0/mlflow/traces", json={"trace": {"trace_info": {
            "trace_id": f"tr-{uuid.uuid4().hex}", "request_time": "2026-01-01T00:00:00Z",
            "state": "OK", "trace_location": {"type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": e}},
            "tags": {LOCATION_TAG: loc, SPANS_LOCATION_TAG: "ARTIFACT_REPO"}}}})),
    "v3 start-trace trace_metadata": (LOCATION_TAG, lambda api, e, loc: api.call(
        "POST", "api/3.0/mlflow/traces", json={"trace": {"trace_info": {
            "trace_id": f"tr-{uuid.uuid4().hex}", "request_time": "2026-01-01T00:00:00Z",
            "state": "OK", "trace_location": {"type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": e}},
            "trace_metadata": {LOCATION_TAG: loc}}}})),
    "v3 start-trace spans location": (SPANS_LOCATION_TAG, lambda api, e, loc: api.call(
        "POST", "api/3.0/mlflow/traces", json={"trace": {"trace_info": {
            "trace_id": f"tr-{uuid.uuid4().hex}", "request_time": "2026-01-01T00:00:00Z",
            "state": "OK", "trace_location": {"type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": e}},
            "tags": {SPANS_LOCATION_TAG: "ARTIFACT_REPO"}}}})),
    "v2 traces tags": (LOCATION_TAG, lambda api, e, loc: api.call(
        "POST", "api/2.0/mlflow/traces", json={"experiment_id": e, "timestamp_ms": 1000,
        "tags": [{"key": LOCATION_TAG, "value": loc}]})),
    "v2 traces request_metadata": (LOCATION_TAG, lambda api, e, loc: api.call(
        "POST", "api/2.0/mlflow/traces", json={"experiment_id": e, "timestamp_ms": 1000,
        "request_metadata": [{"key": LOCATION_TAG, "value": loc}]})),
    "v2 set-trace-tag": (LOCATION_TAG, lambda api, e, loc: api.call(
        "PATCH", f"api/2.0/mlflow/traces/{own_trace(api, e)}/tags",
        json={"key": LOCATION_TAG, "value": loc})),
    "v3 set-trace-tag": (LOCATION_TAG, lambda api, e, loc: api.call(
        "PATCH", f"api/3.0/mlflow/traces/{own_trace(api, e)}/tags",
        json={"key": LOCATION_TAG, "value": loc})),
}  # fmt: skip


def searched(api: Api, experiment_id: str) -> requests.Response:
    return api.call("POST", "api/3.0/mlflow/traces/search", json={
        "locations": [{"type": "MLFLOW_EXPERIMENT",
                       "mlflow_experiment": {"experiment_id": experiment_id}}],
        "max_results": 500})  # fmt: skip


class TestSettingALocation:
    @pytest.mark.parametrize("way", WAYS_IN)
    def test_it_refuses_every_way_a_location_gets_into_a_trace(self, way, victim, otto):
        api, experiment_id = otto
        key, send = WAYS_IN[way]

        response = send(api, experiment_id, victim.location)

        assert response.status_code == 400, response.text[:500]
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert key in response.json()["message"]
        # Nothing of Otto's says where project A keeps its traces.
        search = searched(api, experiment_id)
        assert search.status_code == 200, search.text[:500]
        assert victim.location not in search.text


class TestStoredLocations:
    @pytest.mark.parametrize("spelling", ["mlflow-artifacts", "file", "relative", "s3"])
    def test_it_never_follows_a_stored_location_into_another_project(
        self, spelling, victim, otto, gunicorn_server
    ):
        api, experiment_id = otto
        trace_id = own_trace(api, experiment_id)
        store_location(gunicorn_server, trace_id, victim.spellings()[spelling])

        artifacts = [trace_artifact(api, trace_id, version) for version in ("2.0", "3.0")]
        reads = [read(api, experiment_id, trace_id) for read in READS]
        # The same reads of a trace of Otto's whose location MLflow stored itself.
        control = own_trace(api, experiment_id)
        expected = [read(api, experiment_id, control).status_code for read in READS]

        for response in artifacts:
            assert MARKER not in response.content
            assert response.status_code == 404, response.text[:500]
            assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        for response in reads:
            assert MARKER not in response.content
        assert [response.status_code for response in reads] == expected
        assert max(expected) < 500, expected


# Reads of a trace that return its spans or info. traces/get and batchGet answer a 400 naming
# get-trace-artifact for every trace whose spans are in the artifact repository, its own
# included (a bare MLflow 3.17.2 answers 500: tests/test_artifact_traces.py), before any stored
# location is read.
READS = (
    lambda api, e, trace_id: api.call("GET", "api/3.0/mlflow/traces/get",
                                      params={"trace_id": trace_id, "allow_partial": "true"}),
    lambda api, e, trace_id: api.call("GET", "api/3.0/mlflow/traces/batchGet",
                                      params={"trace_ids": [trace_id]}),
    lambda api, e, trace_id: api.call("GET", f"api/3.0/mlflow/traces/{trace_id}"),
    lambda api, e, trace_id: searched(api, e),
)  # fmt: skip


class TestSettingProvenance:
    """CI provenance (which job made it) is the server's too, on the ways in a span takes."""

    @pytest.mark.parametrize("content_type", ["application/x-protobuf", "application/json"])
    def test_it_refuses_a_span_that_claims_a_ci_job(self, content_type, otto):
        api, experiment_id = otto
        attributes = {"mlflow.traceTag.gitlab.job_url": "https://gitlab.example/jobs/1"}
        body = (otlp_span(os.urandom(16), attributes) if content_type.endswith("protobuf")
                else otlp_json(attributes))  # fmt: skip

        response = post_otlp(api, experiment_id, body, content_type)

        assert response.status_code == 400, response.text[:500]
        assert "gitlab.job_url" in response.json()["message"]
        assert "gitlab.example/jobs/1" not in searched(api, experiment_id).text
