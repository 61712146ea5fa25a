"""Project A holds secrets; Otto, a Developer of project B only, goes after them, in-process
(tests/inprocess.py) unless a test needs a live server."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import override_settings

from tests.api import Api
from tests.inprocess import SITE_URL, Site, raw_call, site_settings

MARKER = "a-secret-marker"
SECRET_MODEL = "secret-model-a"


@dataclass
class Target:
    """Project A's objects, and what an attacker fills into requests to reach them."""

    workspace: str
    experiment_id: str
    run_id: str
    logged_model_id: str
    trace_id: str
    dataset_id: str
    artifact_path: str

    @property
    def markers(self) -> list[str]:
        """Strings that appear only in project A's data."""
        return [MARKER, SECRET_MODEL, self.run_id, self.logged_model_id, self.trace_id,
                self.dataset_id]  # fmt: skip


def plant_secrets(api: Api, seeded: dict, workspace: str) -> Target:
    """Project A's secrets, next to its seeded objects (tests/api.py), written as its owner."""
    experiment_id = api.ok("POST", "api/2.0/mlflow/experiments/create",
                           json={"name": MARKER})["experiment_id"]  # fmt: skip
    run_id = api.ok(
        "POST",
        "api/2.0/mlflow/runs/create",
        json={"experiment_id": experiment_id, "tags": [{"key": "secret", "value": MARKER}]},
    )["run"]["info"]["run_id"]
    artifact = f"{experiment_id}/{run_id}/artifacts/secret.txt"
    api.ok("PUT", f"api/2.0/mlflow-artifacts/artifacts/{artifact}", data=MARKER.encode())
    api.ok(
        "POST",
        "api/2.0/mlflow/registered-models/create",
        json={"name": SECRET_MODEL, "tags": [{"key": "secret", "value": MARKER}]},
    )
    api.ok(
        "POST",
        "api/2.0/mlflow/model-versions/create",
        json={"name": SECRET_MODEL, "source": f"runs:/{run_id}/model", "run_id": run_id},
    )
    dataset = api.ok("POST", "api/3.0/mlflow/datasets/create",
                     json={"name": MARKER, "experiment_ids": [experiment_id]})  # fmt: skip
    return Target(
        workspace=workspace,
        experiment_id=experiment_id,
        run_id=run_id,
        logged_model_id=seeded["logged_model_id"],
        trace_id=seeded["trace_id"],
        dataset_id=dataset["dataset"]["dataset_id"],
        artifact_path=artifact,
    )


@pytest.fixture(scope="session")
def target(site_seeds, django_db_blocker, gitlab, cast) -> Target:
    """Project A's secrets, planted in-process once (MLflow's store keeps them; the Django rows
    the planting wrote are rolled back, as for `site_seeds`)."""
    site = Site()
    with django_db_blocker.unblock(), override_settings(**site_settings(gitlab)):
        with transaction.atomic():
            api = site.api(cast.project.path, cast.olivia.token)
            planted = plant_secrets(api, site_seeds["a"], f"p-{cast.project.id}")
            transaction.set_rollback(True)
        cache.clear()
    return planted


@pytest.fixture
def attacker(site_project_b) -> Api:
    """Otto in his own project B, in-process: a Developer there, nobody in project A."""
    return site_project_b[0]


def raw_request(url: str, method: str, raw_path: str, token: str, body: bytes = b"") -> tuple:
    """Send a path exactly as written: HTTP clients would resolve dot segments first. To the
    site in-process (tests/inprocess.py) when `url` is its."""
    if url == SITE_URL:
        return raw_call(method, raw_path, {"Authorization": f"Bearer {token}"}, body)
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, raw_path, body=body or None,
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def snapshot(api: Api, target: Target) -> dict:
    """Everything project A holds that an attacker could try to change."""
    runs = api.ok(
        "POST",
        "api/2.0/mlflow/runs/search",
        json={"experiment_ids": [target.experiment_id], "run_view_type": "ALL"},
    )
    experiments = api.ok(
        "POST", "api/2.0/mlflow/experiments/search", json={"max_results": 1000, "view_type": "ALL"}
    )
    models = api.ok("GET", "api/2.0/mlflow/registered-models/search")
    versions = api.ok("GET", "api/2.0/mlflow/model-versions/search")
    logged = api.ok("GET", f"api/2.0/mlflow/logged-models/{target.logged_model_id}")
    trace = api.ok("GET", f"api/3.0/mlflow/traces/{target.trace_id}")
    dataset = api.ok("GET", f"api/3.0/mlflow/datasets/{target.dataset_id}")
    artifact = api.call("GET", f"api/2.0/mlflow-artifacts/artifacts/{target.artifact_path}")
    listing = api.ok("GET", "api/2.0/mlflow/artifacts/list", params={"run_id": target.run_id})
    for experiment in experiments.get("experiments", []):
        experiment.pop("last_update_time", None)
    return {"runs": runs, "experiments": experiments, "models": models, "versions": versions,
            "logged": logged, "trace": trace, "dataset": dataset, "listing": listing,
            "artifact": (artifact.status_code, artifact.content)}  # fmt: skip
