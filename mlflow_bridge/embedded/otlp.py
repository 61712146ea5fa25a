"""OTLP trace ingestion (`POST <tracking URI>/v1/traces`), as MLflow's FastAPI server has it.

`mlflow server` serves OTLP from its FastAPI app only (mlflow/server/otel_api.py); MLflow 3
clients send their spans there, and without it they end up in an artifact no span search
reads. This is that endpoint for the embedded Flask app, registered on it (mlflow_app.py) so
that it is an MLflow route like any other: a row of the route table (CREATE, `body=OTLP`),
reached only after the view checked the caller's write right, read the body within
MAX_JSON_BODY_SIZE and checked the experiment and run named in the headers
(`x-mlflow-experiment-id`, "0" meaning the project's Default; `x-mlflow-run-id`).

What MLflow's endpoint does not check and this one does: every trace the spans belong to is
new or this project's (a span names its trace; another project's trace and a missing one are
told apart by nobody but this check). Errors are MLflow's JSON errors, not FastAPI's `detail`.
"""

from __future__ import annotations

import zlib

from django.conf import settings
from flask import Response, request
from google.protobuf.json_format import Error as ProtoJsonError
from google.protobuf.json_format import Parse as parse_json_proto
from google.protobuf.message import DecodeError
from mlflow.entities.span import Span
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.server.handlers import _get_tracking_store, catch_mlflow_exception
from mlflow.tracing.utils.otlp import (
    MLFLOW_EXPERIMENT_ID_HEADER,
    MLFLOW_RUN_ID_HEADER,
    OTLP_TRACES_PATH,
)
from mlflow.utils.workspace_context import get_request_workspace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from mlflow_bridge.embedded import owners

RULE = OTLP_TRACES_PATH
MEDIA_TYPES = ("application/x-protobuf", "application/json")
# zlib's window bits for each Content-Encoding OTLP allows (deflate: zlib, then raw).
WINDOW_BITS = {"gzip": (16 + zlib.MAX_WBITS,), "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS)}


def invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def decompressed(body: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding, refused beyond `limit` bytes (no zip bombs)."""
    if encoding in ("", "identity"):
        return body
    if encoding not in WINDOW_BITS:
        raise invalid(f"Unsupported Content-Encoding {encoding!r}: use gzip or deflate.")
    for bits in WINDOW_BITS[encoding]:
        inflater = zlib.decompressobj(bits)
        try:
            plain = inflater.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(plain) > limit or inflater.unconsumed_tail:
            raise invalid(f"The decompressed OTLP body is larger than {limit} bytes.")
        return plain
    raise invalid(f"The OTLP body is not valid {encoding} data.")


def parsed(body: bytes, media_type: str) -> ExportTraceServiceRequest:
    """The OTLP export request, in either of OTLP/HTTP's encodings."""
    from mlflow.server.otel_api import _convert_otlp_json_ids_to_base64

    message = ExportTraceServiceRequest()
    try:
        if media_type == "application/json":
            parse_json_proto(_convert_otlp_json_ids_to_base64(body), message,
                             ignore_unknown_fields=True)  # fmt: skip
        else:
            message.ParseFromString(body)
    except (DecodeError, ProtoJsonError, ValueError, RecursionError, AttributeError):
        raise invalid("Invalid OpenTelemetry format")
    if not message.resource_spans:
        raise invalid("Invalid OpenTelemetry format - no spans found")
    return message


def check_ids(span) -> None:
    """OTLP's ids have fixed sizes; MLflow fails with a 500 only when storing other ones."""
    if len(span.trace_id) != 16 or len(span.span_id) != 8 or len(span.parent_span_id) not in (0, 8):
        raise invalid("Invalid OpenTelemetry format - trace ids are 16 bytes, span ids 8")


def mlflow_spans(message: ExportTraceServiceRequest) -> list[Span]:
    otel_spans = [
        (span, resource_spans.resource)
        for resource_spans in message.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    for span, _ in otel_spans:
        check_ids(span)
    try:
        return [Span.from_otel_proto(span, resource=resource) for span, resource in otel_spans]
    except Exception:  # noqa: BLE001 - any span MLflow cannot convert is the client's error
        raise invalid("Cannot convert OpenTelemetry span to MLflow span")


def check_traces(spans: list[Span], workspace: str) -> None:
    """Spans may start a trace or extend one of this project's, never another's."""
    for trace_id in sorted({span.trace_id for span in spans}):
        if owners.owner_of("trace", trace_id) not in (None, workspace):
            message = f"No trace with id {trace_id!r} in this project."
            raise MlflowException(message, error_code=RESOURCE_DOES_NOT_EXIST)


@catch_mlflow_exception
def export_traces() -> Response:
    """OTLP/HTTP export: store the spans in the experiment the bridge checked."""
    experiment_id = request.headers.get(MLFLOW_EXPERIMENT_ID_HEADER)
    if not experiment_id:
        raise invalid(f"The {MLFLOW_EXPERIMENT_ID_HEADER} header names no experiment.")
    media_type = (request.content_type or "").split(";")[0].strip()
    if media_type not in MEDIA_TYPES:
        raise invalid(f"Invalid Content-Type: {request.content_type}. Expected: "
                      "application/x-protobuf or application/json")  # fmt: skip
    encoding = (request.content_encoding or "").lower()
    body = decompressed(request.get_data(), encoding, settings.MAX_JSON_BODY_SIZE)
    spans = mlflow_spans(parsed(body, media_type))
    check_traces(spans, get_request_workspace())
    store = _get_tracking_store()
    try:
        store.log_spans(experiment_id, spans)
    except (ValueError, TypeError, OverflowError) as exc:
        # MLflow's endpoint answers any failure here with 422 "Failed to log OpenTelemetry
        # spans"; values it cannot store are the client's, the database's errors are not.
        raise invalid(f"Failed to log OpenTelemetry spans: {type(exc).__name__}")
    run_id = request.headers.get(MLFLOW_RUN_ID_HEADER)
    if run_id and (roots := sorted({s.trace_id for s in spans if s.parent_id is None})):
        store.link_traces_to_run(roots, run_id)
    answer = ExportTraceServiceResponse().SerializeToString()
    return Response(answer, status=200, mimetype="application/x-protobuf")
