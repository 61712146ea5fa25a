"""Each door between projects, tried by name: artifacts, GraphQL, tags, headers, oracles."""

from __future__ import annotations

import pytest

from tests.api import Api
from tests.security.conftest import MARKER, raw_request, snapshot


def encodings(workspace: str, inner: str) -> list[str]:
    """Ways to spell a path into project A's artifacts from project B."""
    return [
        f"workspaces/{workspace}/{inner}",
        f"../{workspace}/{inner}",
        f"x/../../{workspace}/{inner}",
        f"%2e%2e/%2e%2e/workspaces/{workspace}/{inner}",
        f"%252e%252e/%252e%252e/workspaces/{workspace}/{inner}",
        f"x/..%2F..%2F{workspace}/{inner}",
        f"x%5C..%5C..%5C{workspace}/{inner}",
        f"x//..//..//{workspace}/{inner}",
        f"%2Fworkspaces%2F{workspace}%2F{inner}",
    ]


@pytest.mark.parametrize("prefix", ["api", "ajax-api"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_it_keeps_every_spelling_of_an_artifact_path_inside_the_project(
    prefix, method, site, cast, target
):
    base = site.tracking_uri(cast.other_project.path).removeprefix(site.url)
    for spelling in encodings(target.workspace, target.artifact_path):
        status, body = raw_request(
            site.url, method,
            f"{base}{prefix}/2.0/mlflow-artifacts/artifacts/{spelling}",
            cast.otto.token, body=b"overwritten" if method == "PUT" else b"",
        )  # fmt: skip
        assert status in (400, 404), (spelling, status, body[:200])
        assert MARKER.encode() not in body


@pytest.mark.parametrize(
    ("route", "params"),
    [
        ("api/2.0/mlflow/artifacts/list", {"path": "../../.."}),
        ("api/2.0/mlflow/artifacts/list", {"path": "%2e%2e/%2e%2e"}),
        ("get-artifact", {"path": "../../secret.txt"}),
        ("get-artifact", {"path": "/etc/passwd"}),
        ("model-versions/get-artifact", {"name": "model", "version": "1", "path": "../../x"}),
    ],
)
def test_it_refuses_climbing_paths_in_listing_and_ui_download_routes(
    route, params, attacker, site_project_b
):
    _, b = site_project_b
    response = attacker.call("GET", route, params={"run_id": b["run_id"], **params})

    assert response.status_code in (400, 404)
    assert MARKER not in response.text


@pytest.mark.parametrize("root", [".", "./", "workspaces", "%2e", "workspaces/p-1/.."])
def test_it_never_deletes_the_artifact_root(root, site, cast, site_project_b):
    api_b, b = site_project_b
    base = site.tracking_uri(cast.other_project.path).removeprefix(site.url)

    status, _ = raw_request(
        site.url,
        "DELETE",
        f"{base}api/2.0/mlflow-artifacts/artifacts/{root}",
        cast.otto.token,
    )

    assert status in (400, 404)
    notes = api_b.call("GET", f"api/2.0/mlflow-artifacts/artifacts/{b['artifact_path']}")
    assert notes.content == b"seeded notes"


def test_it_answers_graphql_for_members_with_only_their_data(attacker, site_project_b, target):
    _, b = site_project_b
    query = ("query q($a: String, $b: String) {"
             " a: mlflowGetRun(input: {runId: $a}) { run { info { runId } } }"
             " b: mlflowGetRun(input: {runId: $b}) { run { info { runId } } } }")  # fmt: skip

    response = attacker.call("POST", "graphql", json={
        "query": query, "variables": {"a": target.run_id, "b": b["run_id"]}})  # fmt: skip

    assert response.status_code == 200
    assert response.json()["data"]["b"]["run"]["info"]["runId"] == b["run_id"]
    assert target.run_id not in str(response.json()["data"])


def test_it_refuses_a_graphql_request_without_a_query(attacker):
    assert attacker.call("POST", "graphql", json={"variables": {}}).status_code == 400
    assert attacker.call("GET", "graphql", params={"query": "{ test }"}).status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "api/2.0/mlflow/runs/set-tag", {"key": "mlflow.artifactLocation", "value": "s3://x"}),
        ("POST", "api/2.0/mlflow/runs/create",
         {"tags": [{"key": "mlflow.artifactLocation", "value": "file:///"}]}),
        ("PATCH", "api/3.0/mlflow/traces/{trace_id}/tags",
         {"key": "mlflow.artifactLocation", "value": "mlflow-artifacts:/workspaces/p-1"}),
        ("PATCH", "api/2.0/mlflow/traces/{trace_id}/tags",
         {"key": "mlflow.trace.spansLocation", "value": "x"}),
        ("DELETE", "api/3.0/mlflow/traces/{trace_id}/tags", {"key": "mlflow.artifactLocation"}),
        ("PATCH", "api/2.0/mlflow/logged-models/{model_id}/tags",
         {"tags": [{"key": "mlflow.artifactLocation", "value": "s3://x"}]}),
        ("POST", "api/3.0/mlflow/traces",
         {"trace": {"trace_info": {"tags": {"mlflow.trace.archiveLocation": "s3://x"}}}}),
        ("POST", "api/2.0/mlflow/runs/set-tag", {"key": "gitlab.job_url", "value": "forged"}),
        ("POST", "api/2.0/mlflow/runs/create",
         {"tags": [{"key": "gitlab.pipeline_id", "value": "1"}]}),
    ],
)  # fmt: skip
def test_it_refuses_storage_location_tags(method, path, body, attacker, site_project_b):
    _, b = site_project_b
    path = path.format(trace_id=b["trace_id"], model_id=b["logged_model_id"])
    body = {"run_id": b["run_id"], "experiment_id": b["experiment_id"], **body}

    response = attacker.call(method, path, json=body)

    assert response.status_code == 400
    assert "set by the server only" in response.json()["message"]


def test_it_refuses_artifact_location_on_experiment_create(attacker):
    response = attacker.post(
        "experiments/create", {"name": "elsewhere", "artifact_location": "s3://bucket/x"}
    )

    assert response.status_code == 400


def test_it_answers_the_same_for_another_projects_experiment_and_a_missing_one(attacker, target):
    theirs = attacker.get("experiments/get", experiment_id=target.experiment_id)
    missing = attacker.get("experiments/get", experiment_id="987654")

    assert theirs.status_code == missing.status_code == 404
    assert theirs.text.replace(target.experiment_id, "N") == missing.text.replace("987654", "N")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Host": "evil.example.com", "X-Forwarded-For": "10.0.0.1"},
        {"X-Forwarded-Proto": "https", "Forwarded": "for=1.2.3.4;host=evil"},
        {"Cookie": "mlflow-request-header-X-MLFLOW-WORKSPACE=default; sessionid=forged"},
        {"X-MLFLOW-WORKSPACE": "default", "x-mlflow-workspace": "p-1"},
    ],
)
def test_it_ignores_headers_that_try_to_change_project_or_principal(
    headers, site, cast, site_project_a, site_project_b, target
):
    api_b, b = site_project_b

    response = api_b.call(
        "POST",
        "api/2.0/mlflow/runs/search",
        json={"experiment_ids": [b["experiment_id"]]},
        headers=headers,
    )

    assert response.status_code == 200
    assert [r["info"]["run_id"] for r in response.json()["runs"]] == [b["run_id"]]
    assert MARKER not in response.text


def test_it_acts_as_the_token_holder_whatever_else_is_sent(site, cast, site_project_a, target):
    api_a, _ = site_project_a
    before = snapshot(api_a, target)
    forged = Api(site.tracking_uri(cast.project.path), cast.otto.token)

    response = forged.call("POST", "api/2.0/mlflow/runs/set-tag", headers={
        "Cookie": f"sessionid=x; token={cast.olivia.token}", "PRIVATE-TOKEN": cast.olivia.token,
    }, json={"run_id": target.run_id, "key": "secret", "value": "forged"})  # fmt: skip

    assert response.status_code == 404
    assert snapshot(api_a, target) == before
