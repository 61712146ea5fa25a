"""What a stock MLflow 3 client or UI sends works as on a bare `mlflow server` (issue 11).

Each test gets a fresh project of its own, where Cora is a Developer: on the live server where
the stock client, gunicorn's limits or chunked bodies are under test, in-process otherwise
(the classes that override `fresh`).
"""

from __future__ import annotations

import itertools
import json
import os
import uuid

import pytest

from tests import warm_processes
from tests.api import Api

_numbers = itertools.count(1)


def fresh_project(server, gitlab) -> Api:
    """A project nobody has used yet, and Cora, its Developer."""
    number = next(_numbers)
    project = gitlab.add_project(f"ml/compat/fresh-{number}")
    cora = gitlab.add_user(f"cora-{number}")
    project.direct[cora.id] = 30
    api = Api(server.tracking_uri(project.path), cora.token)
    api.project = project
    return api


@pytest.fixture
def fresh(gunicorn_server, gitlab) -> Api:
    """On the live server: for the stock client, gunicorn's own limits and chunked bodies."""
    return fresh_project(gunicorn_server, gitlab)


@pytest.fixture
def fresh_in_process(site, gitlab) -> Api:
    """In-process (tests/inprocess.py): for what the service answers, whoever serves it."""
    return fresh_project(site, gitlab)


def new_run(api: Api) -> tuple[str, str]:
    experiment_id = api.ok("POST", "api/2.0/mlflow/experiments/create",
                           json={"name": "compat"})["experiment_id"]  # fmt: skip
    run = api.ok("POST", "api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id})
    return experiment_id, run["run"]["info"]["run_id"]


ARTIFACTS = """
import json, sys
import mlflow

with mlflow.start_run() as run:
    for name in sys.argv[1:]:
        mlflow.log_text(name, name)
listed = [f.path for f in mlflow.MlflowClient().list_artifacts(run.info.run_id)]
read = {name: mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{name}") for name in listed}
print(json.dumps({"listed": listed, "read": read}))
"""


class TestArtifactNames:
    @pytest.mark.parametrize(
        "name",
        [
            pytest.param("日本.txt", id="CJK"),
            pytest.param("é.txt", id="latin-1 letter"),
            pytest.param("ü.txt", id="another latin-1 letter"),
            pytest.param("emoji 🚀 and space.txt", id="emoji and space"),
            pytest.param("dir ñ/naïve.csv", id="non-ASCII directory"),
        ],
    )
    def test_it_round_trips_a_utf8_name_through_the_artifact_proxy(self, fresh, name):
        experiment_id, run_id = new_run(fresh)
        path = f"api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/{name}"

        fresh.ok("PUT", path, data=name.encode())
        listing = fresh.ok("GET", "api/2.0/mlflow/artifacts/list",
                           params={"run_id": run_id, "path": name.rpartition("/")[0]})  # fmt: skip
        downloaded = fresh.call("GET", path)
        from_ui = fresh.call("GET", "get-artifact", params={"run_id": run_id, "path": name})
        fresh.ok("DELETE", path)

        assert [f["path"] for f in listing["files"]] == [name]
        assert downloaded.status_code == 200 and downloaded.content == name.encode()
        assert from_ui.status_code == 200 and from_ui.content == name.encode()
        assert fresh.call("GET", path).status_code == 404

    def test_it_round_trips_non_ascii_names_with_the_stock_client(self, fresh):
        result = run_client(fresh, ARTIFACTS, "日本.txt", "é.txt", "ü.txt")

        names = ["日本.txt", "é.txt", "ü.txt"]
        assert sorted(result["listed"]) == sorted(names)
        assert result["read"] == {name: name for name in names}

    def test_it_keeps_two_names_that_differ_only_in_a_non_ascii_letter(self, fresh):
        experiment_id, run_id = new_run(fresh)
        base = f"api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts"

        fresh.ok("PUT", f"{base}/é.txt", data=b"first")
        fresh.ok("PUT", f"{base}/ü.txt", data=b"second")

        assert fresh.call("GET", f"{base}/é.txt").content == b"first"
        assert fresh.call("GET", f"{base}/ü.txt").content == b"second"


TRACED = """
import json, sys
import mlflow

experiment = sys.argv[1]
if experiment:
    mlflow.set_experiment(experiment)


@mlflow.trace
def shout(text):
    return text.upper()


shout(sys.argv[2])
mlflow.flush_trace_async_logging()
found = mlflow.search_traces(filter_string=f"trace.text LIKE '%{sys.argv[2]}%'",
                             return_type="list")
trace = mlflow.get_trace(found[0].info.trace_id) if found else None
print(json.dumps({
    "found": [t.info.trace_id for t in found],
    "spans": [s.name for s in trace.data.spans] if trace else [],
    "experiment_id": found[0].info.experiment_id if found else None,
}))
"""


def run_client(api: Api, code: str, *args: str) -> dict:
    """The stock mlflow client, in a process of its own, against the project's URI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    env.update(MLFLOW_TRACKING_URI=api.uri,
               MLFLOW_TRACKING_TOKEN=api.session.headers["Authorization"].split()[1])  # fmt: skip
    done = warm_processes.run_python(["-c", code, *args], env, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def experiment_named(api: Api, name: str) -> dict:
    return api.ok("GET", "api/2.0/mlflow/experiments/get-by-name",
                  params={"experiment_name": name})["experiment"]  # fmt: skip


class TestTraces:
    @pytest.mark.parametrize(
        "experiment",
        [pytest.param("", id="no experiment set"), pytest.param("traced", id="an experiment set")],
    )
    def test_it_finds_a_traced_call_by_its_span_text(self, fresh, experiment):
        result = run_client(fresh, TRACED, experiment, "needle-in-a-span")

        assert len(result["found"]) == 1
        assert result["spans"] == ["shout"]
        assert result["experiment_id"] == experiment_named(fresh, experiment or "Default")[
            "experiment_id"]  # fmt: skip

    def test_it_stores_spans_sent_over_otlp_in_the_tracking_store(self, fresh):
        result = run_client(fresh, TRACED, "", "otlp-spans")

        stored = fresh.ok("GET", "api/3.0/mlflow/traces/get",
                          params={"trace_id": result["found"][0]})  # fmt: skip
        assert [span["name"] for span in stored["trace"]["spans"]] == ["shout"]

    def test_it_shows_the_trace_as_the_uis_trace_view_reads_it(self, fresh):
        trace_id = run_client(fresh, TRACED, "", "in-the-ui")["found"][0]

        # The UI's trace view: the trace with its spans, then the spans as an artifact.
        view = fresh.ok("GET", "ajax-api/3.0/mlflow/traces/get", params={"trace_id": trace_id})
        artifact = fresh.ok("GET", "ajax-api/3.0/mlflow/get-trace-artifact",
                            params={"request_id": trace_id})  # fmt: skip

        assert [span["name"] for span in view["trace"]["spans"]] == ["shout"]
        assert [span["name"] for span in artifact["spans"]] == ["shout"]

    def test_it_reads_experiment_0_in_a_trace_location_as_the_default_experiment(self, fresh):
        trace = fresh.ok("POST", "api/3.0/mlflow/traces", json={"trace": {"trace_info": {
            "trace_id": f"tr-{uuid.uuid4().hex}",
            "trace_location": {"type": "MLFLOW_EXPERIMENT",
                               "mlflow_experiment": {"experiment_id": "0"}},
            "request_time": "2026-01-01T00:00:00Z", "state": "OK"}}})  # fmt: skip

        location = trace["trace"]["trace_info"]["trace_location"]["mlflow_experiment"]
        assert location["experiment_id"] == experiment_named(fresh, "Default")["experiment_id"]


class TestDefaultExperiment:
    @pytest.fixture
    def fresh(self, fresh_in_process) -> Api:
        return fresh_in_process

    def test_it_lists_default_in_a_fresh_project(self, fresh):
        found = fresh.ok("POST", "api/2.0/mlflow/experiments/search", json={"max_results": 10})

        assert [e["name"] for e in found["experiments"]] == ["Default"]

    def test_it_lists_default_with_the_id_experiment_0_maps_to(self, fresh):
        listed = fresh.ok("GET", "api/2.0/mlflow/experiments/search", params={"max_results": 10})
        zero = fresh.ok("GET", "api/2.0/mlflow/experiments/get", params={"experiment_id": "0"})

        assert [e["experiment_id"] for e in listed["experiments"]] == [
            zero["experiment"]["experiment_id"]]  # fmt: skip


def otlp_spans(trace_hex: str | None = None, name: str = "otlp") -> bytes:
    """One finished root span (of a new trace unless named), as an OTLP/HTTP protobuf export
    request."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message = ExportTraceServiceRequest()
    span = message.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex(trace_hex or uuid.uuid4().hex)
    span.span_id = bytes.fromhex("0123456789abcdef")
    span.name, span.start_time_unix_nano, span.end_time_unix_nano = name, 10**18, 10**18 + 1000
    return message.SerializeToString()


def export(api: Api, body: bytes, experiment_id: str | None = "0", **headers: str):
    headers = {"Content-Type": "application/x-protobuf", **headers}
    if experiment_id is not None:
        headers["x-mlflow-experiment-id"] = experiment_id
    return api.call("POST", "v1/traces", data=body, headers=headers)


class TestOtlp:
    @pytest.fixture
    def fresh(self, fresh_in_process) -> Api:
        return fresh_in_process

    @pytest.fixture
    def project_b(self, site_project_b) -> tuple[Api, dict]:
        return site_project_b

    def test_it_stores_raw_otlp_spans_in_the_default_experiment(self, fresh):
        trace_hex = uuid.uuid4().hex

        response = export(fresh, otlp_spans(trace_hex))

        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/x-protobuf"
        trace = fresh.ok("GET", "api/3.0/mlflow/traces/get", params={"trace_id": f"tr-{trace_hex}"})
        assert [span["name"] for span in trace["trace"]["spans"]] == ["otlp"]
        location = trace["trace"]["trace_info"]["trace_location"]["mlflow_experiment"]
        assert location["experiment_id"] == experiment_named(fresh, "Default")["experiment_id"]

    def test_it_refuses_a_reader(self, fresh, gitlab):
        reader = gitlab.add_user(f"reader-{next(_numbers)}")
        fresh.project.direct[reader.id] = 20

        response = export(Api(fresh.uri, reader.token), otlp_spans())

        assert response.status_code == 403
        assert response.json()["error_code"] == "PERMISSION_DENIED"

    def test_it_answers_404_for_another_projects_experiment(self, fresh, project_b):
        _, seeded_b = project_b

        response = export(fresh, otlp_spans(), experiment_id=seeded_b["experiment_id"])

        assert response.status_code == 404
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    def test_it_answers_404_for_another_projects_run(self, fresh, project_b):
        _, seeded_b = project_b

        response = export(fresh, otlp_spans(), **{"x-mlflow-run-id": seeded_b["run_id"]})

        assert response.status_code == 404

    def test_it_answers_404_for_spans_of_another_projects_trace(self, fresh, project_b):
        api_b, _ = project_b
        theirs = uuid.uuid4().hex
        export(api_b, otlp_spans(theirs, name="theirs"))

        response = export(fresh, otlp_spans(theirs, name="mine"))

        assert response.status_code == 404
        trace = api_b.ok("GET", "api/3.0/mlflow/traces/get", params={"trace_id": f"tr-{theirs}"})
        assert [span["name"] for span in trace["trace"]["spans"]] == ["theirs"]

    @pytest.mark.parametrize(
        ("body", "experiment_id", "content_type"),
        [
            pytest.param(b"\xff\x00garbage", "0", "application/x-protobuf", id="not protobuf"),
            pytest.param(b"", "0", "application/x-protobuf", id="no spans"),
            pytest.param(b"{", "0", "application/json", id="broken OTLP JSON"),
            pytest.param(otlp_spans(), None, "application/x-protobuf", id="no experiment header"),
            pytest.param(otlp_spans(), "0", "text/plain", id="wrong content type"),
        ],
    )
    def test_it_answers_bad_exports_with_a_json_400(self, fresh, body, experiment_id,
                                                    content_type):  # fmt: skip
        response = export(fresh, body, experiment_id, **{"Content-Type": content_type})

        assert response.status_code == 400, response.text
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"

    def test_it_accepts_gzip_and_refuses_a_decompression_bomb(self, fresh):
        import gzip

        packed = export(fresh, gzip.compress(otlp_spans()), **{"Content-Encoding": "gzip"})
        bomb = export(fresh, gzip.compress(b"\0" * 40_000_000), **{"Content-Encoding": "gzip"})

        assert packed.status_code == 200, packed.text
        assert bomb.status_code == 400


def raw_exchange(url: str, request: bytes) -> tuple[int, dict, bytes]:
    """Send bytes exactly as written and read the answer: status, headers, body."""
    import http.client
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # nothing more comes: a cut body is cut for good
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, dict(response.getheaders()), response.read()


def token_of(api: Api) -> str:
    return api.session.headers["Authorization"].split()[1]


class TestLongUrls:
    def test_it_charts_100_runs_in_one_request(self, fresh):
        experiment_id, _ = new_run(fresh)
        run_ids = [fresh.ok("POST", "api/2.0/mlflow/runs/create",
                            json={"experiment_id": experiment_id})["run"]["info"]["run_id"]
                   for _ in range(100)]  # fmt: skip
        metric = {"run_id": run_ids[-1], "key": "loss", "value": 0.5, "timestamp": 1, "step": 0}
        fresh.ok("POST", "api/2.0/mlflow/runs/log-metric", json=metric)

        response = fresh.call("GET", "ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                              params={"run_ids": run_ids, "metric_key": "loss",
                                      "max_results": 320})  # fmt: skip

        assert len(response.request.url) > 4094
        assert response.status_code == 200, response.text[:300]
        assert [m["run_id"] for m in response.json()["metrics"]] == [run_ids[-1]]

    def test_it_refuses_a_longer_request_line_in_mlflows_json_shape(self, fresh):
        path = "/mlflow/" + fresh.project.path + "/tracking/api/2.0/mlflow/runs/get?run_id="
        request = f"GET {path}{'a' * 9000} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()

        status, headers, body = raw_exchange(fresh.uri, request)

        assert status == 414
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body)["error_code"] == "REQUEST_LIMIT_EXCEEDED"

    def test_it_answers_a_malformed_request_in_mlflows_json_shape(self, fresh):
        status, headers, body = raw_exchange(fresh.uri, b"GET /x HTTP/9.9\r\n\r\n")

        assert status == 400
        assert json.loads(body)["error_code"] == "MALFORMED_REQUEST"


def chunked_request(api: Api, method: str, path: str, framing: bytes) -> bytes:
    target = "/mlflow/" + api.project.path + "/tracking/" + path
    head = (f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token_of(api)}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")  # fmt: skip
    return head.encode() + framing


BROKEN_FRAMINGS = [
    pytest.param(b"zz\r\n{}\r\n0\r\n\r\n", id="chunk size not hex"),
    pytest.param(b"2\r\n{}XX0\r\n\r\n", id="chunk without its CRLF"),
    pytest.param(b"ffff\r\n{}", id="body ends inside a chunk"),
]


class TestChunkedFraming:
    @pytest.mark.parametrize("framing", BROKEN_FRAMINGS)
    def test_it_answers_a_malformed_chunked_json_body_with_a_400(self, fresh, framing):
        status, _, body = raw_exchange(fresh.uri, chunked_request(
            fresh, "POST", "api/2.0/mlflow/experiments/create", framing))  # fmt: skip

        assert status == 400, body[:300]
        assert json.loads(body)["error_code"] == "MALFORMED_REQUEST"

    @pytest.mark.parametrize("framing", BROKEN_FRAMINGS)
    def test_it_answers_a_malformed_chunked_upload_with_a_400_and_stores_nothing(
        self, fresh, framing
    ):
        experiment_id, run_id = new_run(fresh)
        path = f"api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/f.txt"

        status, _, body = raw_exchange(fresh.uri, chunked_request(fresh, "PUT", path, framing))

        assert status == 400, body[:300]
        assert json.loads(body)["error_code"] == "MALFORMED_REQUEST"
        assert fresh.call("GET", path).status_code == 404


def assert_mlflow_4xx(response, statuses=(400, 404)) -> None:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    body = response.json()
    assert body["error_code"] and body["message"]
    for leak in ("SELECT", "sqlite", "postgresql", "Traceback", "/data/", "artifacts/workspaces"):
        assert leak not in body["message"], body["message"][:300]


class TestBadInput:
    @pytest.fixture
    def fresh(self, fresh_in_process) -> Api:
        return fresh_in_process

    def test_it_refuses_json_nested_5000_deep(self, fresh):
        body = b'{"name": "deep", "tags": ' + b"[" * 5000 + b"]" * 5000 + b"}"

        response = fresh.call("POST", "api/2.0/mlflow/experiments/create", data=body,
                              headers={"Content-Type": "application/json"})  # fmt: skip

        assert_mlflow_4xx(response, (400,))
        assert [e["name"] for e in fresh.ok("GET", "api/2.0/mlflow/experiments/search",
                params={"max_results": 10})["experiments"]] == ["Default"]  # fmt: skip

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({"query": "{"}, id="query that does not parse"),
            pytest.param({"query": "query { test { output } }", "variables": [1]},
                         id="variables a list"),
            pytest.param({"query": "query { test { output } }", "variables": "x"},
                         id="variables a string"),
            pytest.param({"query": 42}, id="query not a string"),
            pytest.param({"query": "query Q($id: String!) { mlflowGetRun(input: {runId: $id})"
                          " { run { info { runId } } } }", "variables": {"id": 5}},
                         id="variable of the wrong type"),
        ],
    )  # fmt: skip
    def test_it_answers_bad_graphql_with_a_4xx(self, fresh, body):
        response = fresh.call("POST", "graphql", json=body)

        assert response.status_code < 500, response.text[:300]
        if response.status_code != 200:
            assert_mlflow_4xx(response)

    def test_it_refuses_a_search_over_400000_experiment_ids_without_sql(self, fresh):
        experiment_id, _ = new_run(fresh)
        ids = [experiment_id] * 400_000

        response = fresh.call("POST", "api/2.0/mlflow/runs/search",
                              json={"experiment_ids": ids})  # fmt: skip

        assert_mlflow_4xx(response)

    def test_it_answers_a_deleted_datasets_records_with_a_404(self, fresh):
        dataset = fresh.ok("POST", "api/3.0/mlflow/datasets/create",
                           json={"name": "gone"})["dataset"]["dataset_id"]  # fmt: skip
        fresh.ok("GET", f"api/3.0/mlflow/datasets/{dataset}/records")
        fresh.ok("DELETE", f"api/3.0/mlflow/datasets/{dataset}")

        answers = [
            fresh.call("GET", f"api/3.0/mlflow/datasets/{dataset}/records"),
            fresh.call("GET", f"api/3.0/mlflow/datasets/{dataset}"),
            fresh.call("POST", f"api/3.0/mlflow/datasets/{dataset}/records",
                       json={"records": json.dumps([{"inputs": {"q": "x"}}])}),
            fresh.call("GET", f"api/3.0/mlflow/datasets/{dataset}/experiment-ids"),
        ]  # fmt: skip

        for response in answers:
            assert_mlflow_4xx(response, (404,))


class TestModelVersionArtifacts:
    """The UI's model page reads a version's files with model-versions/get-artifact, which a
    bare server answers with a 500 for runs:/ and models:/ sources."""

    @pytest.fixture
    def fresh(self, fresh_in_process) -> Api:
        return fresh_in_process

    @pytest.fixture
    def versions(self, fresh) -> Api:
        experiment_id, run_id = new_run(fresh)
        fresh.ok("PUT", f"api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/"
                 "model/MLmodel", data=b"flavors: {}\n")  # fmt: skip
        fresh.ok("POST", "api/2.0/mlflow/registered-models/create", json={"name": "m"})
        for source in (f"runs:/{run_id}/model", "models:/m/1", "models:/m@champion"):
            run = {"run_id": run_id} if source.startswith("runs:") else {}
            fresh.ok("POST", "api/2.0/mlflow/model-versions/create",
                     json={"name": "m", "source": source, **run})  # fmt: skip
            if run:
                fresh.ok("POST", "api/2.0/mlflow/registered-models/alias",
                         json={"name": "m", "alias": "champion", "version": "1"})  # fmt: skip
        return fresh

    @pytest.mark.parametrize(
        "version",
        [
            pytest.param("1", id="runs:/ source"),
            pytest.param("2", id="models:/name/version source"),
            pytest.param("3", id="models:/name@alias source"),
        ],
    )
    def test_it_serves_a_version_whose_source_is_a_run_or_another_version(self, versions,
                                                                          version):  # fmt: skip
        response = versions.call(
            "GET",
            "model-versions/get-artifact",
            params={"name": "m", "version": version, "path": "MLmodel"},
        )

        assert response.status_code == 200, response.text[:300]
        assert response.content == b"flavors: {}\n"

    def test_it_answers_a_missing_version_or_file_with_a_json_404(self, versions):
        missing_version = versions.call(
            "GET",
            "model-versions/get-artifact",
            params={"name": "m", "version": "9", "path": "MLmodel"},
        )
        missing_file = versions.call(
            "GET",
            "model-versions/get-artifact",
            params={"name": "m", "version": "2", "path": "nope"},
        )

        assert_mlflow_4xx(missing_version, (404,))
        assert_mlflow_4xx(missing_file, (404,))


class TestMlflowsOwnMessages:
    """Where a bare server refuses a body itself, the service answers exactly as it does
    (messages recorded from `mlflow server` 3.17.2)."""

    @pytest.fixture
    def fresh(self, fresh_in_process) -> Api:
        return fresh_in_process

    @pytest.mark.parametrize(
        ("path", "body", "message"),
        [
            pytest.param("experiments/create", {"name": 123},
                         "Invalid value 123 for parameter 'name' supplied:  Hint: Value was of "
                         "type 'int'.", id="name a number"),
            pytest.param("experiments/create", {"name": "ok", "tags": "x"},
                         "Invalid value \"x\" for parameter 'tags' supplied:  Hint: Value was of "
                         "type 'str'.", id="tags a string"),
            pytest.param("runs/log-metric", {"key": "k", "value": "abc", "timestamp": 1},
                         "Invalid value \"abc\" for parameter 'value' supplied:  Hint: Value "
                         "was of type 'str'.", id="metric value a string"),
            pytest.param("runs/set-tag", {"key": {"a": 1}, "value": "v"},
                         "Invalid value {\"a\":1} for parameter 'key' supplied:  Hint: Value "
                         "was of type 'dict'.", id="tag key an object"),
            pytest.param("registered-models/create", {"name": ["a"]},
                         "Invalid value [\"a\"] for parameter 'name' supplied:  Hint: Value was "
                         "of type 'list'.", id="model name a list"),
        ],
    )  # fmt: skip
    def test_it_keeps_mlflows_status_code_and_message(self, fresh, path, body, message):
        if "key" in body:
            body = {"run_id": new_run(fresh)[1], **body}

        response = fresh.post(path, body)

        assert response.status_code == 400
        assert response.json() == {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": message + " See the API docs for more information about request parameters.",
        }


class TestFieldSpellings:
    @pytest.fixture
    def fresh(self, fresh_in_process) -> Api:
        return fresh_in_process

    def test_it_refuses_a_camel_case_field_and_keeps_nothing_of_it(self, fresh):
        experiment_id, run_id = new_run(fresh)

        response = fresh.post("runs/set-tag", {"runId": run_id, "key": "k", "value": "v"})

        assert response.status_code == 400
        assert response.json() == {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": "Field 'runId' must be spelled 'run_id'.",
        }
        run = fresh.ok("GET", "api/2.0/mlflow/runs/get", params={"run_id": run_id})["run"]
        assert "k" not in {tag["key"] for tag in run["data"].get("tags", [])}

    def test_it_leaves_camel_case_keys_of_free_form_values_alone(self, fresh):
        experiment_id, run_id = new_run(fresh)

        fresh.ok("POST", "api/2.0/mlflow/runs/set-tag",
                 json={"run_id": run_id, "key": "runId", "value": "mine"})  # fmt: skip

        run = fresh.ok("GET", "api/2.0/mlflow/runs/get", params={"run_id": run_id})["run"]
        assert {"key": "runId", "value": "mine"} in run["data"]["tags"]
