"""The tracking view in-process (Django's test client), for one project path and one token."""

from __future__ import annotations

import json

from django.test import Client


class Tracking:
    def __init__(self, client: Client, path: str, token: str):
        self.client = client
        self.prefix = f"/mlflow/{path}/tracking/"
        self.auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def call(self, method: str, route: str, body: dict | None = None, **params) -> tuple[int, dict]:
        """(status, JSON body) of one MLflow REST call, `route` below `api/2.0/mlflow/`."""
        url = self.prefix + "api/2.0/mlflow/" + route
        if method == "GET":
            response = self.client.get(url, params, **self.auth)
        else:
            data = json.dumps(body or {})
            response = self.client.generic(
                method, url, data, content_type="application/json", **self.auth
            )
        content = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, json.loads(content) if content else {}

    def get(self, route: str, **params) -> tuple[int, dict]:
        return self.call("GET", route, **params)

    def post(self, route: str, body: dict | None = None) -> tuple[int, dict]:
        return self.call("POST", route, body)

    def artifact(self, method: str, path: str, data: bytes = b"", **extra) -> tuple[int, bytes]:
        """(status, body) of a proxied artifact call on `<experiment>/<run>/artifacts/...`."""
        url = self.prefix + "api/2.0/mlflow-artifacts/artifacts/" + path
        response = self.client.generic(method, url, data, content_type="application/octet-stream",
                                       **self.auth, **extra)  # fmt: skip
        content = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, content

    def new_run(self, experiment: str) -> tuple[str, str]:
        """(experiment id, run id) of a new run in a new experiment."""
        experiment_id = self.post("experiments/create", {"name": experiment})[1]["experiment_id"]
        run = self.post("runs/create", {"experiment_id": experiment_id})[1]["run"]["info"]
        return experiment_id, run["run_id"]
