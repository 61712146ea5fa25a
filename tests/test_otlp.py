"""OTLP ingestion (otlp.py) in-process: values MLflow cannot store are the client's 400."""

from __future__ import annotations

import os

import pytest

from tests.gitlab_double import GitLabDouble
from tests.inprocess import Tracking, new_member
from tests.test_trace_locations import post_spans

pytestmark = pytest.mark.django_db
BEYOND_INT64 = 2**63


@pytest.fixture
def dave(client, gitlab: GitLabDouble, settings) -> Tracking:
    settings.GITLAB_URL = gitlab.url
    return new_member(client, gitlab, 30, "dave-otlp", "ml/otlp")


def span_at(start: int, end: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message = ExportTraceServiceRequest()
    span = message.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = os.urandom(16), os.urandom(8), "root"
    span.start_time_unix_nano, span.end_time_unix_nano = start, end
    return message.SerializeToString()


class TestSpanTimes:
    @pytest.mark.parametrize(("start", "end"), [
        pytest.param(BEYOND_INT64, BEYOND_INT64, id="both"),
        pytest.param(1, 2**64 - 1, id="end"),
    ])  # fmt: skip
    def test_it_refuses_times_beyond_what_a_database_stores(self, start, end, dave):
        status, error = post_spans(dave, span_at(start, end))

        assert status == 400, error
        assert error["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "time" in error["message"]

    def test_it_accepts_the_largest_time_a_database_stores(self, dave):
        assert post_spans(dave, span_at(1, BEYOND_INT64 - 1))[0] == 200
