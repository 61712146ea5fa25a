"""A trace's stored location never leads outside its project: not through OTLP span attributes
that would set it, not through a location already stored (imported, or written before).

Olivia owns ml/loc-a/<n> and Otto is a Developer of ml/loc-b/<n>; Olivia's run holds a
traces.json that Otto must never read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tests.gitlab_double import GitLabDouble
from tests.inprocess import Tracking, new_member

pytestmark = pytest.mark.django_db
SECRET = b'{"spans": [{"name": "project A secret"}]}'


def otlp_span(trace_id: bytes, attributes: dict[str, str]) -> bytes:
    """An OTLP/protobuf export of one root span with string attributes."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message = ExportTraceServiceRequest()
    span = message.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = trace_id, b"\x01" * 8, "root"
    span.start_time_unix_nano, span.end_time_unix_nano = 1_000_000_000, 2_000_000_000
    for key, value in attributes.items():
        attribute = span.attributes.add()
        attribute.key, attribute.value.string_value = key, value
    return message.SerializeToString()


def post_spans(tracking: Tracking, body: bytes) -> tuple[int, dict]:
    response = tracking.client.post(tracking.prefix + "v1/traces", body,
                                    content_type="application/x-protobuf",
                                    HTTP_X_MLFLOW_EXPERIMENT_ID="0", **tracking.auth)  # fmt: skip
    content = b"".join(response.streaming_content) if response.streaming else response.content
    is_json = response.headers.get("Content-Type", "").startswith("application/json")
    return response.status_code, json.loads(content) if is_json else {}


def trace_artifact(tracking: Tracking, trace_id: str):
    response = tracking.client.get(tracking.prefix + "ajax-api/3.0/mlflow/get-trace-artifact",
                                   {"request_id": trace_id}, **tracking.auth)  # fmt: skip
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, content


@pytest.fixture(autouse=True)
def gitlab_url(settings, gitlab):
    settings.GITLAB_URL = gitlab.url


@pytest.fixture
def victim(client, gitlab: GitLabDouble) -> tuple[Tracking, str]:
    """Project A's tracking, and the proxied URI of a run directory holding traces.json."""
    tracking = new_member(client, gitlab, 50, "olivia-loc", "ml/loc-a")
    experiment_id, run_id = tracking.new_run("secrets")
    prefix = f"{experiment_id}/{run_id}/artifacts"
    assert tracking.artifact("PUT", f"{prefix}/traces.json", SECRET)[0] == 200
    return tracking, f"mlflow-artifacts:/workspaces/{tracking.workspace}/{prefix}"


@pytest.fixture
def attacker(client, gitlab: GitLabDouble) -> Tracking:
    return new_member(client, gitlab, 30, "otto-loc", "ml/loc-b")


def victim_file(location: str) -> str:
    """The same traces.json, spelt as a file: URI on the server's disk."""
    destination = Path(django_settings.MLFLOW_ARTIFACTS_DESTINATION).resolve()
    return (destination / location.removeprefix("mlflow-artifacts:/")).as_uri()


class TestOtlpLocations:
    @pytest.mark.parametrize("key", [
        "mlflow.traceTag.mlflow.artifactLocation",
        "mlflow.traceTag.mlflow.trace.spansLocation",
        "mlflow.traceTag.mlflow.trace.archiveLocation",
    ])  # fmt: skip
    def test_it_refuses_a_span_attribute_that_sets_a_storage_location(self, key, victim, attacker):
        _, location = victim
        status, error = post_spans(attacker, otlp_span(os.urandom(16), {key: location}))

        assert status == 400, error
        assert error["error_code"] == "INVALID_PARAMETER_VALUE"
        assert key in error["message"]

    def test_it_keeps_other_trace_tags_from_span_attributes(self, attacker):
        trace_id = os.urandom(16)
        posted = post_spans(attacker, otlp_span(trace_id, {"mlflow.traceTag.team": "nlp"}))

        status, info = attacker.get(f"traces/tr-{trace_id.hex()}/info")
        assert posted[0] == 200
        assert status == 200, info
        assert {"key": "team", "value": "nlp"} in info["trace_info"]["tags"]


def store_location(trace_id: str, location: str, spans_location: str = "ARTIFACT_REPO") -> None:
    """Write a trace's location tags straight into MLflow's database, as old data may hold."""
    from mlflow.server.handlers import _get_tracking_store
    from mlflow.store.tracking.dbmodels.models import SqlTraceTag

    store = _get_tracking_store()
    with store.ManagedSessionMaker(read_only=False) as session:
        for key, value in (("mlflow.artifactLocation", location),
                           ("mlflow.trace.spansLocation", spans_location)):  # fmt: skip
            session.merge(SqlTraceTag(request_id=trace_id, key=key, value=value))


class TestStoredLocations:
    @pytest.mark.parametrize("spelling", ["proxied", "proxied with dots", "file", "relative"])
    def test_it_never_reads_another_projects_traces_whatever_the_stored_tag_says(
        self, spelling, victim, attacker
    ):
        _, location = victim
        trace_id = os.urandom(16)
        assert post_spans(attacker, otlp_span(trace_id, {}))[0] == 200
        own_root = f"mlflow-artifacts:/workspaces/{attacker.workspace}"
        stored = {
            "proxied": location,
            "proxied with dots": own_root + "/../" + location.split("workspaces/", 1)[1],
            "file": victim_file(location),
            "relative": os.path.relpath(victim_file(location).removeprefix("file://")),
        }[spelling]
        store_location(f"tr-{trace_id.hex()}", stored)

        status, content = trace_artifact(attacker, f"tr-{trace_id.hex()}")

        assert b"project A secret" not in content
        assert status == 404, content
        assert json.loads(content)["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    def test_it_still_reads_a_trace_stored_in_its_own_project(self, victim):
        tracking, location = victim
        trace_id = os.urandom(16)
        assert post_spans(tracking, otlp_span(trace_id, {}))[0] == 200
        store_location(f"tr-{trace_id.hex()}", location)

        status, content = trace_artifact(tracking, f"tr-{trace_id.hex()}")

        assert (status, content) == (200, SECRET)


class TestWithinWorkspace:
    @pytest.mark.parametrize(("uri", "inside"), [
        pytest.param("s3://bucket/prefix/workspaces/p-7/1/traces/tr-1/artifacts", True, id="own"),
        pytest.param("s3://bucket/prefix/workspaces/p-70/1/traces", False, id="p-70 is not p-7"),
        pytest.param("s3://bucket/prefix/workspaces/p-7/../p-8/1", False, id="dots"),
        pytest.param("s3://bucket/prefix/workspaces/p-7/%2e%2e/p-8/1", False, id="encoded dots"),
        pytest.param("s3://other/prefix/workspaces/p-7/1", False, id="other bucket"),
        pytest.param("s3://bucket/prefix/workspaces/p-7", False, id="the root itself"),
        pytest.param("mlflow-artifacts:/workspaces/p-7/1/traces", True, id="proxied own"),
        pytest.param("mlflow-artifacts://host/workspaces/p-7/1", True, id="proxied with host"),
        pytest.param("mlflow-artifacts:/workspaces/p-8/1/traces", False, id="proxied other"),
        pytest.param("https://x/api/2.0/mlflow-artifacts/artifacts/workspaces/p-7/1", False,
                     id="http proxy"),
        pytest.param("file:///etc/workspaces/p-7/1", False, id="file elsewhere"),
        pytest.param("gs://bucket/prefix/workspaces/p-7/1", False, id="other scheme"),
    ])  # fmt: skip
    def test_it_says_whether_a_location_is_inside_an_s3_workspace(self, uri, inside, settings):
        from mlflow_bridge.embedded.trace_locations import within_workspace

        settings.MLFLOW_ARTIFACTS_DESTINATION = "s3://bucket/prefix"

        assert within_workspace(uri, "p-7") is inside
