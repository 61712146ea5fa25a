"""A thin REST client for tests: one project URI, one token, MLflow's JSON API."""

from __future__ import annotations

import requests


class Api:
    def __init__(
        self, tracking_uri: str, token: str | None, session: requests.Session | None = None
    ):
        self.uri = tracking_uri
        # A live server's, or one served in-process (tests/inprocess.py's Site.session).
        self.session = session or requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.uri + path.lstrip("/"), timeout=30, **kwargs)

    def get(self, path: str, **params) -> requests.Response:
        return self.call("GET", f"api/2.0/mlflow/{path}", params=params)

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return self.call("POST", f"api/2.0/mlflow/{path}", json=body or {})

    def ok(self, method: str, path: str, **kwargs) -> dict:
        response = self.call(method, path, **kwargs)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        return response.json() if response.content else {}


def seed_project(api: Api, suffix: str = "") -> dict:
    """An experiment with a run (param, metric, tag, artifact), a registered model and version
    with an alias, a logged model and a trace. Returns their ids."""
    experiment_id = api.ok("POST", "api/2.0/mlflow/experiments/create",
                           json={"name": f"seeded{suffix}"})["experiment_id"]  # fmt: skip
    run = api.ok("POST", "api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id})
    run_id = run["run"]["info"]["run_id"]
    api.ok("POST", "api/2.0/mlflow/runs/log-batch", json={
        "run_id": run_id, "params": [{"key": "alpha", "value": "1"}],
        "metrics": [{"key": "loss", "value": 0.5, "timestamp": 1, "step": 0}],
        "tags": [{"key": "team", "value": "seed"}]})  # fmt: skip
    artifact_path = f"{experiment_id}/{run_id}/artifacts/notes.txt"
    api.ok("PUT", f"api/2.0/mlflow-artifacts/artifacts/{artifact_path}", data=b"seeded notes")
    model = api.ok("POST", "api/2.0/mlflow/registered-models/create",
                   json={"name": f"model{suffix}"})["registered_model"]["name"]  # fmt: skip
    api.ok(
        "POST",
        "api/2.0/mlflow/model-versions/create",
        json={"name": model, "source": f"runs:/{run_id}/model", "run_id": run_id},
    )
    api.ok(
        "POST",
        "api/2.0/mlflow/registered-models/alias",
        json={"name": model, "alias": "champion", "version": "1"},
    )
    logged = api.ok("POST", "api/2.0/mlflow/logged-models",
                    json={"experiment_id": experiment_id, "name": "logged"})  # fmt: skip
    trace = api.ok("POST", "api/3.0/mlflow/traces", json={"trace": {"trace_info": {
        "trace_id": "tr-" + run_id, "trace_location": {"type": "MLFLOW_EXPERIMENT",
        "mlflow_experiment": {"experiment_id": experiment_id}},
        "request_time": "2026-01-01T00:00:00Z", "state": "OK"}}})  # fmt: skip
    return {
        "experiment_id": experiment_id,
        "run_id": run_id,
        "artifact_path": artifact_path,
        "model": model,
        "logged_model_id": logged["model"]["info"]["model_id"],
        "trace_id": trace["trace"]["trace_info"]["trace_id"],
    }
