"""Two projects, same names, no way across: by id, by name, by path, through both prefixes.

In-process (tests/inprocess.py): projects A and B are seeded once per session."""

from __future__ import annotations

import pytest

PREFIXES = ["api", "ajax-api"]


@pytest.fixture
def project_a(site_project_a):
    return site_project_a


@pytest.fixture
def project_b(site_project_b):
    return site_project_b


def test_it_gives_each_project_its_own_namespace(project_a, project_b):
    (api_a, a), (api_b, b) = project_a, project_b

    assert a["model"] == b["model"] == "model"
    for api, mine in [(api_a, a), (api_b, b)]:
        found = api.ok("GET", "api/2.0/mlflow/experiments/get-by-name",
                       params={"experiment_name": "seeded"})  # fmt: skip
        assert found["experiment"]["experiment_id"] == mine["experiment_id"]
        model = api.ok("GET", "api/2.0/mlflow/registered-models/get", params={"name": "model"})
        versions = model["registered_model"]["latest_versions"]
        # Other live tests may register more versions from the seeded run: all are its own.
        assert {v["run_id"] for v in versions} == {mine["run_id"]}


def by_id_requests(prefix: str, a: dict) -> list:
    """Requests that name project A's objects by id or path."""
    return [
        ("run get", "GET", f"{prefix}/2.0/mlflow/runs/get", {"params": {"run_id": a["run_id"]}}),
        ("run log", "POST", f"{prefix}/2.0/mlflow/runs/log-metric",
         {"json": {"run_id": a["run_id"], "key": "x", "value": 1, "timestamp": 1}}),
        ("run tag", "POST", f"{prefix}/2.0/mlflow/runs/set-tag",
         {"json": {"run_id": a["run_id"], "key": "x", "value": "y"}}),
        ("run delete", "POST", f"{prefix}/2.0/mlflow/runs/delete",
         {"json": {"run_id": a["run_id"]}}),
        ("metric history", "GET", f"{prefix}/2.0/mlflow/metrics/get-history",
         {"params": {"run_id": a["run_id"], "metric_key": "loss"}}),
        ("experiment get", "GET", f"{prefix}/2.0/mlflow/experiments/get",
         {"params": {"experiment_id": a["experiment_id"]}}),
        ("experiment delete", "POST", f"{prefix}/2.0/mlflow/experiments/delete",
         {"json": {"experiment_id": a["experiment_id"]}}),
        ("run into experiment", "POST", f"{prefix}/2.0/mlflow/runs/create",
         {"json": {"experiment_id": a["experiment_id"]}}),
        ("artifact list", "GET", f"{prefix}/2.0/mlflow/artifacts/list",
         {"params": {"run_id": a["run_id"]}}),
        ("ui artifact", "GET", "get-artifact",
         {"params": {"run_id": a["run_id"], "path": "notes.txt"}}),
        ("logged model", "GET", f"{prefix}/2.0/mlflow/logged-models/{a['logged_model_id']}", {}),
        ("logged model delete", "DELETE",
         f"{prefix}/2.0/mlflow/logged-models/{a['logged_model_id']}", {}),
        ("trace", "GET", f"{prefix}/3.0/mlflow/traces/{a['trace_id']}", {}),
        ("trace tag", "PATCH", f"{prefix}/3.0/mlflow/traces/{a['trace_id']}/tags",
         {"json": {"key": "x", "value": "y"}}),
    ]  # fmt: skip


def artifact_paths(workspace_a: str, a: dict) -> list[str]:
    inner = a["artifact_path"]
    return [
        f"workspaces/{workspace_a}/{inner}",
        f"x/../../{workspace_a}/{inner}",
        f"%2E%2E/{workspace_a}/{inner}",
        f"..%2F..%2Fworkspaces/{workspace_a}/{inner}",
    ]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_it_refuses_project_a_objects_to_project_b_by_id(prefix, project_a, project_b):
    (_, a), (api_b, _) = project_a, project_b

    for name, method, path, kwargs in by_id_requests(prefix, a):
        response = api_b.call(method, path, **kwargs)
        assert response.status_code in (400, 403, 404), (name, response.status_code)
        assert "seeded" not in response.text, name


@pytest.mark.parametrize("prefix", PREFIXES)
def test_it_keeps_artifact_paths_inside_the_project(prefix, cast, project_a, project_b):
    (_, a), (api_b, _) = project_a, project_b

    for path in artifact_paths(f"p-{cast.project.id}", a):
        for method in ("GET", "PUT", "DELETE"):
            response = api_b.call(method, f"{prefix}/2.0/mlflow-artifacts/artifacts/{path}",
                                  data=b"overwritten" if method == "PUT" else None)  # fmt: skip
            assert response.status_code in (400, 403, 404), (path, method, response.status_code)
            assert b"seeded notes" not in response.content


def test_it_leaves_project_a_unchanged(project_a, project_b):
    (api_a, a), (api_b, _) = project_a, project_b
    for prefix in PREFIXES:
        for _, method, path, kwargs in by_id_requests(prefix, a):
            api_b.call(method, path, **kwargs)

    run = api_a.ok("GET", "api/2.0/mlflow/runs/get", params={"run_id": a["run_id"]})["run"]
    assert run["info"]["lifecycle_stage"] == "active"
    assert [m["key"] for m in run["data"]["metrics"]] == ["loss"]
    experiment = api_a.ok("GET", "api/2.0/mlflow/experiments/get",
                          params={"experiment_id": a["experiment_id"]})  # fmt: skip
    assert experiment["experiment"]["lifecycle_stage"] == "active"
    notes = api_a.call("GET", f"api/2.0/mlflow-artifacts/artifacts/{a['artifact_path']}")
    assert notes.content == b"seeded notes"
    logged = api_a.ok("GET", f"api/2.0/mlflow/logged-models/{a['logged_model_id']}")
    assert logged["model"]["info"]["status"] != "DELETED"


def test_it_ignores_a_client_sent_workspace_header(project_b, cast):
    api_b, b = project_b
    for value in (f"p-{cast.project.id}", "default", f"p-{cast.project.id},default"):
        for name in ("X-MLFLOW-WORKSPACE", "x-mlflow-workspace"):
            response = api_b.call("POST", "api/2.0/mlflow/experiments/search",
                                  json={"max_results": 100}, headers={name: value})  # fmt: skip
            ids = [e["experiment_id"] for e in response.json()["experiments"]]
            assert b["experiment_id"] in ids
            assert all(e["workspace"] == f"p-{cast.other_project.id}"
                       for e in response.json()["experiments"])  # fmt: skip


def test_it_searches_only_the_projects_own_data(project_a, project_b, cast):
    (_, a), (api_b, b) = project_a, project_b

    both = [a["experiment_id"], b["experiment_id"]]
    mixed = api_b.call("POST", "api/2.0/mlflow/runs/search", json={"experiment_ids": both})
    runs = api_b.ok(
        "POST", "api/2.0/mlflow/runs/search", json={"experiment_ids": [b["experiment_id"]]}
    )
    models = api_b.ok("GET", "api/2.0/mlflow/registered-models/search")
    versions = api_b.ok("GET", "api/2.0/mlflow/model-versions/search")

    assert mixed.status_code == 404
    assert "seeded" not in mixed.text
    assert [r["info"]["run_id"] for r in runs["runs"]] == [b["run_id"]]
    assert len(models["registered_models"]) == 1
    assert [v["run_id"] for v in versions["model_versions"]] == [b["run_id"]]


def test_it_refuses_model_versions_that_point_at_another_projects_run(project_a, project_b):
    (_, a), (api_b, b) = project_a, project_b

    response = api_b.call("POST", "api/2.0/mlflow/model-versions/create",
                          json={"name": b["model"], "run_id": a["run_id"],
                                "source": f"runs:/{a['run_id']}/model"})  # fmt: skip

    assert response.status_code in (400, 404)


def test_it_refuses_logged_models_that_point_at_another_projects_run(project_a, project_b):
    (_, a), (api_b, b) = project_a, project_b

    response = api_b.call("POST", "api/2.0/mlflow/logged-models",
                          json={"experiment_id": b["experiment_id"],
                                "source_run_id": a["run_id"]})  # fmt: skip

    assert response.status_code in (400, 404)


def test_it_refuses_linking_another_projects_trace_to_a_run(project_a, project_b):
    (_, a), (api_b, b) = project_a, project_b

    response = api_b.call("POST", "api/2.0/mlflow/traces/link-to-run",
                          json={"run_id": b["run_id"], "trace_ids": [a["trace_id"]]})  # fmt: skip

    assert response.status_code in (400, 404)


def test_it_refuses_the_workspace_admin_routes(project_b):
    api_b, _ = project_b
    for prefix in PREFIXES:
        for method, path in [("POST", "3.0/mlflow/workspaces"),
                             ("GET", "3.0/mlflow/workspaces/default"),
                             ("DELETE", "3.0/mlflow/workspaces/default"),
                             ("PATCH", "3.0/mlflow/workspaces/default")]:  # fmt: skip
            response = api_b.call(method, f"{prefix}/{path}", json={"name": "x"})
            assert response.status_code == 403
            assert "Workspace administration" in response.json()["message"]


def test_it_lists_only_the_projects_own_workspace(project_a, project_b, cast):
    # The UI's workspace list is the bridge's own answer (mlflow_bridge/edge/ui_answers.py).
    api_b, _ = project_b
    for prefix in PREFIXES:
        listed = api_b.ok("GET", f"{prefix}/3.0/mlflow/workspaces")["workspaces"]
        assert [workspace["name"] for workspace in listed] == [f"p-{cast.other_project.id}"]
