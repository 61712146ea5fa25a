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
