"""A trace whose spans are in the artifact store, asked of `traces/get` or `traces/batchGet`.

MLflow's tracking store reads spans from its database (or an archive), never from the artifact
store: for a trace logged in one piece (v3 start-trace, then traces.json; tagged
`mlflow.trace.spansLocation: ARTIFACT_REPO`, or untagged as older traces are) it raises
"Trace data not stored in tracking store" with INTERNAL_ERROR, and a bare `mlflow server` 3.17
answers those two routes 500. MLflow's client and UI read such spans through
`get-trace-artifact`, whose handler tries the store first and falls back to the artifact
store on any MlflowTracingException. `install` makes the store raise one with a 400 instead,
naming that way to the spans.
"""

from __future__ import annotations

from mlflow.exceptions import MlflowTracingException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.tracing.constant import SpansLocation, TraceTagKey

from mlflow_bridge.embedded.wrapping import wrap_once

# Where the store reads spans itself (SqlAlchemyStore._get_spans_with_trace_info).
READ_BY_THE_STORE = frozenset(
    {SpansLocation.TRACKING_STORE.value, SpansLocation.ARCHIVE_REPO.value}
)


class SpansInArtifacts(MlflowTracingException):
    def __init__(self, trace_id: str):
        super().__init__(
            f"Trace {trace_id!r} keeps its spans in the artifact store, which traces/get and "
            "traces/batchGet do not read. Read them with GET ajax-api/3.0/mlflow/"
            f"get-trace-artifact?request_id={trace_id} (as MLflow's client and UI do), and "
            f"the trace's info with GET api/3.0/mlflow/traces/{trace_id}.",
            error_code=INVALID_PARAMETER_VALUE,
        )


def _refusing_artifact_spans(read_spans):
    """The store's span read, raising SpansInArtifacts where it would raise a bare
    MlflowTracingException (an INTERNAL_ERROR) for spans it does not hold."""

    def read(trace_info, spans, allow_partial=True):
        if trace_info.tags.get(TraceTagKey.SPANS_LOCATION) not in READ_BY_THE_STORE:
            raise SpansInArtifacts(trace_info.trace_id)
        return read_spans(trace_info, spans, allow_partial=allow_partial)

    return read


def install() -> None:
    """Make the tracking store's traces/get and batchGet refuse artifact-held spans with a 400."""
    from mlflow.server.handlers import _get_tracking_store

    wrap_once(_get_tracking_store(), "_get_spans_with_trace_info", _refusing_artifact_spans)
