"""The role matrix, in-process: GitLab roles become MLflow rights, per route class."""

from __future__ import annotations

import itertools

import pytest

from tests.api import Api

_fresh = itertools.count()


@pytest.fixture
def project_uri(site, cast) -> str:
    return site.tracking_uri(cast.project.path)


@pytest.fixture
def seeded(site_project_a) -> dict:
    return site_project_a[1]


def reads(s: dict) -> list:
    """(name, method, path, kwargs) of one request per readable route class."""
    return [
        ("experiment search", "POST", "api/2.0/mlflow/experiments/search",
         {"json": {"max_results": 10}}),
        ("experiment get", "GET", "api/2.0/mlflow/experiments/get",
         {"params": {"experiment_id": s["experiment_id"]}}),
        ("run get", "GET", "api/2.0/mlflow/runs/get", {"params": {"run_id": s["run_id"]}}),
        ("run search", "POST", "api/2.0/mlflow/runs/search",
         {"json": {"experiment_ids": [s["experiment_id"]]}}),
        ("metric history", "GET", "api/2.0/mlflow/metrics/get-history",
         {"params": {"run_id": s["run_id"], "metric_key": "loss"}}),
        ("artifact list", "GET", "api/2.0/mlflow/artifacts/list",
         {"params": {"run_id": s["run_id"]}}),
        ("artifact download", "GET", f"api/2.0/mlflow-artifacts/artifacts/{s['artifact_path']}",
         {}),
        ("ui artifact download", "GET", "get-artifact",
         {"params": {"run_id": s["run_id"], "path": "notes.txt"}}),
        ("registered model", "GET", "api/2.0/mlflow/registered-models/get",
         {"params": {"name": s["model"]}}),
        ("model version by alias", "GET", "api/2.0/mlflow/registered-models/alias",
         {"params": {"name": s["model"], "alias": "champion"}}),
        ("logged model", "GET", f"api/2.0/mlflow/logged-models/{s['logged_model_id']}", {}),
        ("trace", "GET", f"api/3.0/mlflow/traces/{s['trace_id']}", {}),
        ("trace search", "POST", "api/3.0/mlflow/traces/search",
         {"json": {"locations": [{"type": "MLFLOW_EXPERIMENT",
                                  "mlflow_experiment": {"experiment_id": s["experiment_id"]}}]}}),
        ("ajax prefix", "POST", "ajax-api/2.0/mlflow/experiments/search",
         {"json": {"max_results": 10}}),
        ("graphql", "POST", "graphql",
         {"json": {"query": "query { mlflowGetExperiment(input: {experimentId: "
                            f"\"{s['experiment_id']}\"}}) {{ experiment {{ name }} }} }}"}}),
        ("ui index", "GET", "", {}),
        ("server info", "GET", "api/3.0/mlflow/server-info", {}),
    ]  # fmt: skip


def writes(s: dict) -> list:
    """(name, method, path, kwargs) of one request per writing route class."""
    n = next(_fresh)
    return [
        ("experiment create", "POST", "api/2.0/mlflow/experiments/create",
         {"json": {"name": f"new-{n}"}}),
        ("run create", "POST", "api/2.0/mlflow/runs/create",
         {"json": {"experiment_id": s["experiment_id"]}}),
        ("log metric", "POST", "api/2.0/mlflow/runs/log-metric",
         {"json": {"run_id": s["run_id"], "key": "loss", "value": n, "timestamp": n, "step": n}}),
        ("run tag", "POST", "api/2.0/mlflow/runs/set-tag",
         {"json": {"run_id": s["run_id"], "key": "k", "value": str(n)}}),
        ("experiment tag", "POST", "api/2.0/mlflow/experiments/set-experiment-tag",
         {"json": {"experiment_id": s["experiment_id"], "key": "k", "value": str(n)}}),
        ("alias", "POST", "api/2.0/mlflow/registered-models/alias",
         {"json": {"name": s["model"], "alias": f"a{n}", "version": "1"}}),
        ("model version tag", "POST", "api/2.0/mlflow/model-versions/set-tag",
         {"json": {"name": s["model"], "version": "1", "key": "k", "value": str(n)}}),
        ("stage transition", "POST", "api/2.0/mlflow/model-versions/transition-stage",
         {"json": {"name": s["model"], "version": "1", "stage": "Staging",
                   "archive_existing_versions": False}}),
        ("registered model create", "POST", "api/2.0/mlflow/registered-models/create",
         {"json": {"name": f"model-{n}"}}),
        ("artifact upload", "PUT",
         f"api/2.0/mlflow-artifacts/artifacts/{s['experiment_id']}/{s['run_id']}/artifacts/w{n}",
         {"data": b"x"}),
        ("logged model create", "POST", "api/2.0/mlflow/logged-models",
         {"json": {"experiment_id": s["experiment_id"]}}),
        ("trace tag", "PATCH", f"api/3.0/mlflow/traces/{s['trace_id']}/tags",
         {"json": {"key": "k", "value": str(n)}}),
        ("ajax write", "POST", "ajax-api/2.0/mlflow/runs/set-tag",
         {"json": {"run_id": s["run_id"], "key": "ajax", "value": str(n)}}),
    ]  # fmt: skip


READERS = ["gina", "paula", "rita"]
WRITERS = ["dave", "mark", "olivia", "sam"]
OUTSIDERS = ["minnie", "charlie", "otto"]


@pytest.mark.parametrize("who", READERS + WRITERS)
def test_it_lets_every_member_read_every_route_class(who, cast, project_uri, seeded):
    api = Api(project_uri, getattr(cast, who).token)

    failures = [
        (name, response.status_code)
        for name, method, path, kwargs in reads(seeded)
        if (response := api.call(method, path, **kwargs)).status_code != 200
    ]

    assert failures == []


@pytest.mark.parametrize("who", READERS)
def test_it_refuses_every_write_to_read_only_roles(who, cast, project_uri, seeded):
    api = Api(project_uri, getattr(cast, who).token)
    role = {"gina": "Guest", "paula": "Planner", "rita": "Reporter"}[who]

    for name, method, path, kwargs in writes(seeded):
        response = api.call(method, path, **kwargs)
        assert response.status_code == 403, name
        assert response.json() == {
            "error_code": "PERMISSION_DENIED",
            "message": f"Developer or higher can write to ml/team/churn; you are {role}.",
        }


def test_it_leaves_data_unchanged_after_refused_writes(cast, project_uri, seeded):
    for who in READERS:
        api = Api(project_uri, getattr(cast, who).token)
        for _, method, path, kwargs in writes(seeded):
            api.call(method, path, **kwargs)

    run = Api(project_uri, cast.olivia.token).ok("GET", "api/2.0/mlflow/runs/get",
                                                 params={"run_id": seeded["run_id"]})  # fmt: skip
    assert [t["key"] for t in run["run"]["data"]["tags"] if not t["key"].startswith("mlflow.")] \
        == ["team"]  # fmt: skip
    assert run["run"]["data"]["metrics"][0]["value"] == 0.5


@pytest.mark.parametrize("who", WRITERS)
def test_it_lets_developers_and_above_write_every_route_class(who, cast, project_uri, seeded):
    api = Api(project_uri, getattr(cast, who).token)

    failures = [
        (name, response.status_code, response.text[:200])
        for name, method, path, kwargs in writes(seeded)
        if (response := api.call(method, path, **kwargs)).status_code != 200
    ]

    assert failures == []


@pytest.mark.parametrize("who", WRITERS)
def test_it_lets_developers_and_above_delete(who, cast, project_uri):
    api = Api(project_uri, getattr(cast, who).token)
    experiment_id = api.ok("POST", "api/2.0/mlflow/experiments/create",
                           json={"name": f"doomed-{who}"})["experiment_id"]  # fmt: skip

    api.ok("POST", "api/2.0/mlflow/experiments/delete", json={"experiment_id": experiment_id})

    experiment = api.ok("GET", "api/2.0/mlflow/experiments/get",
                        params={"experiment_id": experiment_id})  # fmt: skip
    assert experiment["experiment"]["lifecycle_stage"] == "deleted"


@pytest.mark.parametrize("who", READERS)
def test_it_refuses_deletes_to_read_only_roles(who, cast, project_uri, seeded):
    api = Api(project_uri, getattr(cast, who).token)

    response = api.post("experiments/delete", {"experiment_id": seeded["experiment_id"]})

    assert response.status_code == 403


@pytest.mark.parametrize("who", OUTSIDERS)
def test_it_answers_404_to_non_members_exactly_as_for_a_missing_project(who, cast, site, seeded):
    token = getattr(cast, who).token
    existing = Api(site.tracking_uri(cast.project.path), token)
    missing = Api(site.tracking_uri("ml/team/no-such-project"), token)

    for name, method, path, kwargs in reads(seeded) + writes(seeded):
        on_existing = existing.call(method, path, **kwargs)
        on_missing = missing.call(method, path, **kwargs)
        assert on_existing.status_code == 404, name
        assert on_existing.content == on_missing.content, name


def test_it_treats_a_public_project_like_a_private_one_for_non_members(gitlab, cast, site):
    public = gitlab.add_project("ml/open/churn", visibility="public")

    response = Api(site.tracking_uri(public.path), cast.charlie.token).get("experiments/search")

    assert response.status_code == 404


def test_it_answers_401_with_a_challenge_without_credentials(project_uri):
    response = Api(project_uri, None).post("experiments/search")

    assert response.status_code == 401
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert "Basic" in response.headers["WWW-Authenticate"]
    assert response.json()["error_code"] == "UNAUTHENTICATED"


def test_it_answers_401_for_a_token_gitlab_does_not_know(project_uri):
    response = Api(project_uri, "glpat-unknown").post("experiments/search")

    assert response.status_code == 401
    assert "unknown, expired or revoked" in response.json()["message"]


def test_it_asks_for_the_read_api_scope(gitlab, project_uri):
    narrow = gitlab.add_user("narrow", scopes=("read_user",))

    response = Api(project_uri, narrow.token).post("experiments/search")

    assert response.status_code == 401
    assert "read_api" in response.json()["message"]
