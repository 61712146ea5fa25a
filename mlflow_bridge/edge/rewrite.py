"""What the bridge changes in a request before MLflow sees it.

- Experiment "0" (the client's "no experiment set") becomes the project's Default experiment,
  at any depth of a JSON body (a trace's `trace_location.mlflow_experiment.experiment_id`).
- In the fields a route names (see routes.py), a trailing " (<project id>)" is removed, so
  "baseline (42)" and "baseline" address the same experiment or registered model in project 42.
Search filter strings are left alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from mlflow_bridge.edge.errors import BridgeError
from mlflow_bridge.edge.routes import Route
from projects.records import ProjectAccess

DEFAULT_EXPERIMENT = "0"
EXPERIMENT_FIELDS = ("experiment_id", "experiment_ids")
# MLflow stores experiment and registered model names in VARCHAR(256) columns: SQLite would
# take longer names, PostgreSQL would fail with a 500.
MAX_NAME_LENGTH = 256
# Protobuf's JSON parser, which MLflow reads every request message with, stops at 100 levels;
# the bridge's own walks of a body stay far below Python's recursion limit.
MAX_JSON_DEPTH = 100


def _contains_nul(value: object) -> bool:
    """PostgreSQL cannot store NUL in text: refuse it everywhere, on every database."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


def _depth(document: object) -> int:
    """How deeply a JSON document nests, counted without recursion."""
    if not isinstance(document, dict | list):
        return 0
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_JSON_DEPTH:
            items = value.values() if isinstance(value, dict) else value
            # Only containers are queued: a 1,000-metric batch's scalars are looked at once.
            pending.extend((item, depth + 1) for item in items if isinstance(item, dict | list))
    return deepest


def plainly_lacks(body: bytes, *names: bytes) -> bool:
    """Whether no key or string of the JSON `body` can be one of `names`: UTF-8 JSON of ASCII
    characters only, without \\u escapes, spells every string as its bytes (the names hold no
    `/`, JSON's other escape for a plain character), so names absent from the bytes are absent
    from the document. NUL bytes mean UTF-16 or UTF-32, which json.loads also reads."""
    if not body.isascii() or b"\x00" in body or b"\\u" in body:
        return False
    return not any(name in body for name in names)


def _too_deep() -> BridgeError:
    return BridgeError(
        "MALFORMED_REQUEST", f"The request body nests deeper than {MAX_JSON_DEPTH} levels."
    )


def _refuse_nul() -> BridgeError:
    return BridgeError("INVALID_PARAMETER_VALUE", "NUL characters are not allowed in requests.")


class RequestRewriter:
    """Rewrites one request's query string and JSON body for one project."""

    def __init__(self, route: Route, project_id: int, default_experiment_id: Callable[[], str]):
        self._names = route.names
        self._suffix = re.compile(rf" \({project_id}\)$")
        self._default_experiment_id = default_experiment_id

    def _value(self, key: str, value: object) -> object:
        if key == "experiment_id" and value == DEFAULT_EXPERIMENT:
            return self._default_experiment_id()
        if key == "experiment_ids" and isinstance(value, list):
            return [self._value("experiment_id", item) for item in value]
        if key in self._names and isinstance(value, str):
            if len(value) > MAX_NAME_LENGTH:
                raise BridgeError(
                    "INVALID_PARAMETER_VALUE",
                    f"'{key}' is {len(value)} characters long; names are limited to "
                    f"{MAX_NAME_LENGTH}.",
                )
            return self._suffix.sub("", value)
        return value

    def _nested(self, value: object) -> object:
        """Experiment ids below the top level; names are only ever top-level fields."""
        if isinstance(value, list):
            return [self._nested(item) for item in value]
        if isinstance(value, dict):
            return {
                key: self._nested(item) if key not in EXPERIMENT_FIELDS else self._value(key, item)
                for key, item in value.items()
            }
        return value

    def fields(self, fields: dict[str, str]) -> dict[str, str]:
        """Single fields, as a route's headers carry them (routes.Route.headers)."""
        if _contains_nul(fields):
            raise _refuse_nul()
        return {key: self._value(key, value) for key, value in fields.items()}

    def query_string(self, query_string: str) -> str:
        pairs = parse_qsl(query_string, keep_blank_values=True)
        if _contains_nul([item for pair in pairs for item in pair]):
            raise _refuse_nul()
        rewritten = [(key, self._value(key.removesuffix("[]"), value)) for key, value in pairs]
        # experiment_ids may repeat in a query string: each one is a single id there.
        rewritten = [
            (key, self._value("experiment_id", value) if key == "experiment_ids" else value)
            for key, value in rewritten
        ]
        return urlencode(rewritten) if rewritten != pairs else query_string

    def json_body(self, body: bytes) -> tuple[bytes, dict]:
        """The body to send on, and the JSON object it holds ({} for an empty body)."""
        if not body.strip():
            return body, {}
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BridgeError("MALFORMED_REQUEST", f"The request body is not valid JSON: {exc}")
        except RecursionError:
            raise _too_deep()
        if _depth(document) > MAX_JSON_DEPTH:
            raise _too_deep()
        if not isinstance(document, dict):
            raise BridgeError("MALFORMED_REQUEST", "The request body must be a JSON object.")
        # JSON can only spell NUL as an escape (a raw NUL byte is invalid JSON): look for it
        # in the text first, and walk the document only when it might be there. A UTF-16 or
        # UTF-32 body (NUL bytes) spells the escape in other bytes: it is always walked.
        if (b"\\u0000" in body or b"\x00" in body) and _contains_nul(document):
            raise _refuse_nul()
        # Below the top level only experiment ids change: skip that walk when none can be there.
        nested = (lambda value: value) if plainly_lacks(body, b"experiment_id") else self._nested
        rewritten = {key: self._value(key, nested(value)) for key, value in document.items()}
        if rewritten == document:
            return body, document
        return json.dumps(rewritten).encode(), rewritten


JOB_TAG_KEYS = ("gitlab.job_url", "gitlab.job_id", "gitlab.pipeline_id")


def tag_job_run(
    project_access: ProjectAccess, route: Route, body: bytes | None, document: dict
) -> bytes | None:
    """The body to send on: a run a CI job creates gets the job's URL, id and pipeline id as
    tags. Only the bridge sets them: storage.check_reserved_tags refuses them from clients."""
    job = project_access.job
    if job is None or not route.tags_job:
        return body
    tags = list(document.get("tags")) if isinstance(document.get("tags"), list) else []
    values = (job.web_url, str(job.id), str(job.pipeline_id))
    tags += [{"key": key, "value": value} for key, value in zip(JOB_TAG_KEYS, values, strict=True)]
    return json.dumps({**document, "tags": tags}).encode()
