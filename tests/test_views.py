"""The tracking view in-process (Django's test client), GitLab answered by `responses`."""

import pytest
import requests
import responses
from django.core.cache import cache

BASE = "https://gitlab.example.com"
TOKEN = "glpat-dave"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def gitlab_settings(settings):
    settings.GITLAB_URL = BASE
    cache.clear()


def answer_gitlab(path="ml/team/proj", project_id=4242, level=30):
    responses.get(f"{BASE}/api/v4/user", json={"id": 7, "username": "dave"})
    responses.get(
        f"{BASE}/api/v4/projects/{path.replace('/', '%2F')}",
        json={"id": project_id, "path_with_namespace": path,
              "permissions": {"project_access": {"access_level": level}, "group_access": None}},
    )  # fmt: skip


class TestPrefix:
    def test_it_redirects_the_prefix_without_slash_permanently(self, client):
        response = client.get("/mlflow/ml/team/proj/tracking?x=1")

        assert response.status_code == 308
        assert response["Location"] == "/mlflow/ml/team/proj/tracking/?x=1"

    @responses.activate
    def test_it_serves_a_project_whose_path_has_a_tracking_segment(self, client):
        answer_gitlab(path="a/tracking", project_id=4243)

        response = client.get("/mlflow/a/tracking/tracking/version", **AUTH)

        assert response.status_code == 200
        assert responses.calls[1].request.url.endswith("/projects/a%2Ftracking")

    @responses.activate
    def test_it_answers_404_for_empty_path_segments(self, client):
        response = client.get("/mlflow/ml//proj/tracking/version", **AUTH)

        assert response.status_code == 404
        assert len(responses.calls) == 0

    @responses.activate
    def test_it_answers_404_for_a_route_mlflow_does_not_have(self, client):
        answer_gitlab()

        response = client.post("/mlflow/ml/team/proj/tracking/v1/metrics", **AUTH)

        assert response.status_code == 404
        assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


class TestGitLabFailures:
    @responses.activate
    @pytest.mark.parametrize(
        "failure",
        [requests.ConnectTimeout("slow"), requests.ConnectionError("refused")],
        ids=["timeout", "unreachable"],
    )
    def test_it_answers_503_when_gitlab_cannot_answer(self, client, failure):
        responses.get(f"{BASE}/api/v4/user", body=failure)

        response = client.get("/mlflow/ml/team/proj/tracking/version", **AUTH)

        assert response.status_code == 503
        assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"

    @responses.activate
    def test_it_answers_503_when_gitlab_fails(self, client):
        responses.get(f"{BASE}/api/v4/user", status=502, body="bad gateway")

        response = client.get("/mlflow/ml/team/proj/tracking/version", **AUTH)

        assert response.status_code == 503


class TestBadInput:
    @responses.activate
    def test_it_refuses_malformed_json_with_400(self, client):
        answer_gitlab()

        response = client.post("/mlflow/ml/team/proj/tracking/api/2.0/mlflow/runs/create",
                               data=b"{nope", content_type="application/json", **AUTH)  # fmt: skip

        assert response.status_code == 400
        assert response.json()["error_code"] == "MALFORMED_REQUEST"

    @responses.activate
    def test_it_refuses_a_body_over_the_limit_with_413(self, client, settings):
        settings.MAX_JSON_BODY_SIZE = 100
        answer_gitlab()

        response = client.post("/mlflow/ml/team/proj/tracking/api/2.0/mlflow/runs/create",
                               data=b"{" + b" " * 200 + b"}", content_type="application/json",
                               **AUTH)  # fmt: skip

        assert response.status_code == 413
        assert "MAX_JSON_BODY_SIZE" in response.json()["message"]

    @responses.activate
    def test_it_refuses_conflicting_run_id_and_run_uuid(self, client):
        answer_gitlab()

        response = client.post("/mlflow/ml/team/proj/tracking/api/2.0/mlflow/runs/update",
                               data={"run_id": "a", "run_uuid": "b"},
                               content_type="application/json", **AUTH)  # fmt: skip

        assert response.status_code == 400

    @responses.activate
    def test_it_refuses_a_model_source_outside_the_project(self, client):
        answer_gitlab()

        for source in ["s3://bucket/model", "file:///etc", "https://x/y",
                       "mlflow-artifacts:/workspaces/p-1/1/r/artifacts/model",
                       "mlflow-artifacts:/workspaces/p-4242/../p-1/x"]:  # fmt: skip
            response = client.post(
                "/mlflow/ml/team/proj/tracking/api/2.0/mlflow/model-versions/create",
                data={"name": "m", "source": source}, content_type="application/json", **AUTH,
            )  # fmt: skip
            assert response.status_code == 400, source
            assert "not in this project" in response.json()["message"]


class TestHealth:
    def test_it_answers_healthz_without_authentication(self, client):
        assert client.get("/healthz").json() == {"status": "ok"}

    @responses.activate
    def test_it_checks_both_databases_and_reports_the_cache_and_gitlab_in_readyz(self, client):
        responses.get(f"{BASE}/api/v4/version", status=401, json={"message": "401 Unauthorized"})

        response = client.get("/readyz")

        assert response.status_code == 200
        assert response.json() == {"status": "ok", "django_database": "ok",
                                   "mlflow_database": "ok", "cache": "per process",
                                   "gitlab": "ok"}  # fmt: skip

    @responses.activate
    def test_it_reports_an_unreachable_gitlab_in_readyz_but_stays_ready(self, client):
        responses.get(f"{BASE}/api/v4/version", body=requests.ConnectionError("refused"))

        response = client.get("/readyz")

        # Members within GITLAB_OUTAGE_GRACE keep working: the replica stays in rotation.
        assert response.status_code == 200
        assert response.json()["gitlab"] == "unreachable (ConnectionError)"

    @responses.activate
    def test_it_reports_a_gitlab_url_that_is_no_gitlab_in_readyz(self, client):
        responses.get(f"{BASE}/api/v4/version", status=404, body="no such page")

        assert "not a GitLab?" in client.get("/readyz").json()["gitlab"]


class TestMlflowFailures:
    @responses.activate
    def test_it_answers_an_unhandled_mlflow_exception_in_json(self, client, monkeypatch):
        from mlflow_bridge.embedded.mlflow_app import flask_app

        def broken():
            raise RuntimeError("boom")

        answer_gitlab()
        monkeypatch.setitem(flask_app().view_functions, "health", broken)

        response = client.get("/mlflow/ml/team/proj/tracking/health", **AUTH)

        assert response.status_code == 500
        assert response.json()["error_code"] == "INTERNAL_ERROR"
