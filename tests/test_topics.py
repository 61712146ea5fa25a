"""GITLAB_MANDATORY_TOPICS: a project without every topic does not exist here, for anyone."""

from __future__ import annotations

import pytest
import responses
from django.core.cache import cache

from tests.sessions import logged_in_client

BASE = "https://gitlab.example.com"
TOPIC = "sharinghub:aimodel"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def gitlab_settings(settings):
    settings.GITLAB_URL = BASE
    settings.GITLAB_MANDATORY_TOPICS = [TOPIC]
    cache.clear()


def body(project_id: int, path: str, topics: list[str]) -> dict:
    return {"id": project_id, "path_with_namespace": path, "name": path.rsplit("/", 1)[-1],
            "topics": topics, "web_url": f"{BASE}/{path}",
            "permissions": {"project_access": {"access_level": 30},
                            "group_access": None}}  # fmt: skip


def answer_gitlab(token: str = "glpat-dave") -> None:
    responses.get(f"{BASE}/api/v4/user", json={"id": 7, "username": "dave"})
    responses.get(f"{BASE}/api/v4/projects/ml%2Fmodel", json=body(4301, "ml/model", [TOPIC, "x"]))
    responses.get(f"{BASE}/api/v4/projects/ml%2Fplain", json=body(4302, "ml/plain", ["x"]))
    responses.get(f"{BASE}/api/v4/projects/ml%2Fmissing", status=404,
                  json={"message": "404 Project Not Found"})  # fmt: skip
    responses.get(f"{BASE}/api/v4/projects", json=[body(4301, "ml/model", [TOPIC]),
                                                   body(4302, "ml/plain", [])])  # fmt: skip


class TestTrackingApi:
    @responses.activate
    def test_it_serves_a_project_with_every_mandatory_topic(self, client):
        answer_gitlab()

        response = client.get("/mlflow/ml/model/tracking/version",
                              HTTP_AUTHORIZATION="Bearer glpat-dave")  # fmt: skip

        assert response.status_code == 200

    @responses.activate
    def test_it_answers_a_project_lacking_a_topic_as_a_missing_one(self, client):
        answer_gitlab()
        auth = {"HTTP_AUTHORIZATION": "Bearer glpat-dave"}

        plain = client.get("/mlflow/ml/plain/tracking/api/2.0/mlflow/experiments/search", **auth)
        missing = client.get("/mlflow/ml/missing/tracking/api/2.0/mlflow/experiments/search",
                             **auth)  # fmt: skip

        assert plain.status_code == missing.status_code == 404
        assert plain.content == missing.content


class TestPages:
    @responses.activate
    def test_it_lists_only_projects_with_every_mandatory_topic(self, client):
        answer_gitlab()

        page = logged_in_client(client, token="glpat-dave").get("/mlflow/").content.decode()

        assert 'data-path="ml/model"' in page
        assert 'data-path="ml/plain"' not in page

    @responses.activate
    def test_it_has_no_connect_page_for_a_project_lacking_a_topic(self, client):
        answer_gitlab()
        browser = logged_in_client(client, token="glpat-dave")

        assert browser.get("/mlflow/ml/model/connect/").status_code == 200
        assert browser.get("/mlflow/ml/plain/connect/").status_code == 404
