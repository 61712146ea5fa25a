"""The environ MLflow sees, and how a URL is split into project path and MLflow route."""

import io
import json

import pytest

from mlflow_bridge.edge.dispatch import mlflow_environ
from mlflow_bridge.edge.views import split_location

CLIENT_ENVIRON = {
    "REQUEST_METHOD": "POST",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/mlflow/ml/p/tracking/api/2.0/mlflow/runs/create",
    "QUERY_STRING": "a=1",
    "CONTENT_TYPE": "application/json",
    "CONTENT_LENGTH": "99",
    "HTTP_HOST": "mlflow.example.com",
    "HTTP_AUTHORIZATION": "Bearer glpat-secret",
    "HTTP_COOKIE": "sessionid=abc; mlflow-request-header-X-MLFLOW-WORKSPACE=p-1",
    "HTTP_X_MLFLOW_WORKSPACE": "p-1,default",
    "HTTP_X_FORWARDED_FOR": "10.0.0.1",
    "HTTP_X_FORWARDED_HOST": "evil.example.com",
    "HTTP_FORWARDED": "for=10.0.0.1",
    "HTTP_TRANSFER_ENCODING": "chunked",
    "HTTP_CONNECTION": "keep-alive",
    "wsgi.input": io.BytesIO(b"client stream"),
}


def environ(body: bytes | None = b'{"experiment_id": "7"}') -> dict:
    return mlflow_environ(
        dict(CLIENT_ENVIRON),
        script_name="/mlflow/ml/p/tracking",
        path_info="/api/2.0/mlflow/runs/create",
        query_string="a=1",
        workspace="p-42",
        body=body,
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param("SCRIPT_NAME", "/mlflow/ml/p/tracking", id="script name is the prefix"),
        pytest.param("PATH_INFO", "/api/2.0/mlflow/runs/create", id="path below the prefix"),
        pytest.param("HTTP_X_MLFLOW_WORKSPACE", "p-42", id="workspace is the project's"),
        pytest.param("CONTENT_LENGTH", "22", id="length of the rewritten body"),
        pytest.param("HTTP_HOST", "mlflow.example.com", id="host kept"),
    ],
)
def test_it_sets_exactly_these_keys(key, expected):
    assert environ()[key] == expected


@pytest.mark.parametrize(
    "key",
    ["HTTP_AUTHORIZATION", "HTTP_COOKIE", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST",
     "HTTP_FORWARDED", "HTTP_TRANSFER_ENCODING", "HTTP_CONNECTION"],
)  # fmt: skip
def test_it_drops_credentials_forwarding_and_hop_by_hop_headers(key):
    assert key not in environ()


def test_it_passes_the_client_stream_through_when_the_body_was_not_read():
    client_environ = {**CLIENT_ENVIRON, "wsgi.input": io.BytesIO(b"client stream")}

    passed = mlflow_environ(client_environ, script_name="/s", path_info="/p", query_string="",
                            workspace="p-42", body=None)  # fmt: skip

    assert passed["wsgi.input"].read() == b"client stream"
    assert passed["CONTENT_LENGTH"] == "99"


class BrokenStream(io.BytesIO):
    def read(self, size=-1):
        raise OSError("Invalid chunk size")


def test_it_remembers_that_the_client_stream_broke_while_mlflow_read_it():
    client_environ = {**CLIENT_ENVIRON, "wsgi.input": BrokenStream()}
    passed = mlflow_environ(client_environ, script_name="/s", path_info="/p", query_string="",
                            workspace="p-42", body=None)  # fmt: skip

    with pytest.raises(OSError):
        passed["wsgi.input"].read(10)

    assert isinstance(passed["wsgi.input"].failure, OSError)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        pytest.param("ml/team/churn/tracking/", ("ml/team/churn", "/"), id="ui"),
        pytest.param("ml/team/churn/tracking/api/2.0/mlflow/runs/get",
                     ("ml/team/churn", "/api/2.0/mlflow/runs/get"), id="api"),
        pytest.param("a/tracking/tracking/", ("a/tracking", "/"), id="a project named tracking"),
        pytest.param("a/tracking/tracking/api/2.0/mlflow/runs/get",
                     ("a/tracking", "/api/2.0/mlflow/runs/get"), id="api of tracking project"),
        pytest.param("g/s.b/p-1_x/tracking/health", ("g/s.b/p-1_x", "/health"),
                     id="dots dashes underscores"),
        pytest.param("ml/team/churn/tracking", ("ml/team/churn", None), id="no trailing slash"),
        pytest.param("a/tracking/tracking", ("a/tracking", None), id="tracking project no slash"),
    ],
)  # fmt: skip
def test_it_splits_project_path_and_mlflow_route(location, expected):
    assert split_location(location)[:2] == expected


@pytest.mark.parametrize(
    ("decoded", "wsgi"),
    [
        pytest.param("/a/日本.txt", "/a/\xe6\x97\xa5\xe6\x9c\xac.txt", id="CJK"),
        pytest.param("/a/é.txt", "/a/\xc3\xa9.txt", id="latin-1 letter as its two UTF-8 bytes"),
        pytest.param("/a/plain.txt", "/a/plain.txt", id="ASCII unchanged"),
    ],
)
def test_it_hands_paths_to_mlflow_in_wsgi_form(decoded, wsgi):
    built = mlflow_environ(
        dict(CLIENT_ENVIRON), script_name="/mlflow/ml/p/tracking", path_info=decoded,
        query_string="", workspace="p-42", body=None,
    )  # fmt: skip

    assert built["PATH_INFO"] == wsgi


def test_it_keeps_sql_and_store_paths_of_mlflows_failures_from_the_client(caplog):
    from mlflow_bridge.edge.dispatch import _failure

    leaked = b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "(sqlite3.OperationalError) '
    leaked += b'too many SQL variables [SQL: SELECT ...] sqlite:////data/mlflow.sqlite3"}'

    answer = _failure(503, [("Content-Type", "application/json")], [leaked])

    body = json.loads(answer.content)
    assert answer.status_code == 503
    assert body["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "SQL" not in body["message"] and "sqlite" not in body["message"]
    assert "too many SQL variables" in caplog.text


def test_it_answers_mlflows_database_failure_as_retryable_with_retry_after():
    from mlflow_bridge.edge.dispatch import _failure

    failed = b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "(psycopg.OperationalError) '
    failed += b'consuming input failed: server closed the connection unexpectedly"}'

    answer = _failure(503, [("Content-Type", "application/json")], [failed])

    assert answer.status_code == 503
    assert int(answer["Retry-After"]) > 0
    assert "retry" in json.loads(answer.content)["message"]


def test_it_keeps_mlflows_other_failures_without_retry_after():
    from mlflow_bridge.edge.dispatch import _failure

    answer = _failure(500, [("Content-Type", "application/json")],
                      [b'{"error_code": "INTERNAL_ERROR", "message": "boom"}'])  # fmt: skip

    assert answer.status_code == 500
    assert "Retry-After" not in answer


def test_it_keeps_the_sql_of_mlflows_database_refusals_from_the_client(caplog):
    """MLflow turns a database error (here an IntegrityError) into a 400 quoting the SQL."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST
    from sqlalchemy.exc import IntegrityError

    from mlflow_bridge.edge.dispatch import _refusal_without_sql

    error = IntegrityError("INSERT INTO tags (key, value) VALUES (?, ?)", ("k", "v"), Exception())
    refused = MlflowException(message=error, error_code=BAD_REQUEST).serialize_as_json().encode()
    assert b"[SQL: INSERT INTO tags" in refused

    answer = _refusal_without_sql([refused])

    body = json.loads(answer.content)
    assert answer.status_code == 400
    assert body["error_code"] == "BAD_REQUEST"
    assert "SQL" not in body["message"] and "INSERT" not in body["message"]
    assert "INSERT INTO tags" in caplog.text


def test_it_passes_mlflows_other_refusals_through_unchanged():
    from mlflow_bridge.edge.dispatch import _refusal_without_sql

    refused = b'{"error_code": "INVALID_PARAMETER_VALUE", "message": "Missing value for run_id"}'

    assert _refusal_without_sql(iter([refused[:20], refused[20:]])) == [refused]


def test_it_keeps_mlflows_error_code_and_own_words_when_it_quotes_sql():
    """A rename onto an existing name: the client acts on RESOURCE_ALREADY_EXISTS."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS
    from sqlalchemy.exc import IntegrityError

    from mlflow_bridge.edge.dispatch import _refusal_without_sql

    error = IntegrityError("UPDATE registered_models SET name=?", ("m2",), Exception("UNIQUE"))
    refused = (
        MlflowException(
            f"Registered Model (name=m2) already exists. Error: {error}", RESOURCE_ALREADY_EXISTS
        )
        .serialize_as_json()
        .encode()
    )

    body = json.loads(_refusal_without_sql([refused]).content)

    assert body["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert body["message"].startswith("Registered Model (name=m2) already exists.")
    assert "UPDATE" not in body["message"] and "IntegrityError" not in body["message"]
